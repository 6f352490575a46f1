/**
 * Message types on the wire. 0-3 are the standard y-websocket messages (payloads encoded by
 * y-protocols). Accord's extension uses 100-103 and is spoken only with connections that
 * announced it (query parameter `accord=1`), because stock clients log an error on unknown types.
 *
 *   100 request   client -> server  [100][varUint id][varString JSON { method, params }]
 *   101 response  server -> client  [101][varUint id][varString JSON { result } | { error }]
 *   102 describe  client -> server  [102][varString JSON { description?, meta? }]
 *                 attaches to the next update this connection sends
 *   103 event     server -> client  [103][varUint subscription][varString JSON VersionRecord]
 *   104 origin    server -> client  [104][varString JSON { author, description? }]
 *                 names the author of the update message that follows it
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

export const MessageType = {
  sync: 0,
  awareness: 1,
  auth: 2,
  queryAwareness: 3,
  request: 100,
  response: 101,
  describe: 102,
  event: 103,
  origin: 104
} as const

export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType]

/** Query parameter by which a client announces the extension. */
export const EXTENSION_PARAM = 'accord'
/** Query parameter naming the agent (until tokens carry it). */
export const AGENT_PARAM = 'agent'

export const encodeFramed = (type: number, id: number | null, json: unknown): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, type)
  if (id !== null) encoding.writeVarUint(enc, id)
  encoding.writeVarString(enc, JSON.stringify(json))
  return encoding.toUint8Array(enc)
}

/** Reads `[varUint id]? [varString JSON]` after the type byte was consumed. */
export const readFramed = (decoder: decoding.Decoder, withId: boolean): { id: number, body: unknown } => {
  const id = withId ? decoding.readVarUint(decoder) : 0
  return { id, body: JSON.parse(decoding.readVarString(decoder)) }
}
