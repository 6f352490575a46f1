/**
 * The bus between Accord servers that share one store (cluster mode). It carries versions a
 * server stored (so the others apply and relay them without reading the store), awareness
 * (presence) updates, short cluster-wide locks (task claims), and the single-writer traffic:
 * a lease naming the one server that commits a workflow, the updates other servers forward to it,
 * and its acknowledgements once they are stored.
 *
 * The writer lease is an optimization, never a correctness guarantee: the store numbers versions
 * transactionally, so two servers that both believe they write a workflow still keep one gapless
 * history (the loser of a race catches up and renumbers). The lease only keeps that race rare.
 *
 * The bus is only the fast path: a server that misses a version (its bus connection dropped, the
 * stream was trimmed) still converges, because every loaded workflow is reconciled against the
 * durable store's head periodically and whenever a commit finds the head moved.
 * Implementation: bus-redis.ts (Redis Streams for versions, pub/sub for presence, SET NX locks).
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { z } from 'zod'
import { InvalidMessageError } from '../../src/model/errors.ts'
// The model's schemas are zod/mini ones: mini's functions reshape them.
import * as zm from 'zod/mini'
import { ChangeMetaSchema, VersionRecordSchema, ViolationRecordSchema } from '../../src/model/schema.ts'
import { WorkflowMetaSchema } from '../../src/store/store.ts'
import { jitted } from '../../src/store/jit-schema.ts'
import type { RemoteVersion } from '../sync/contracts.ts'

export interface BusHandlers {
  /** A version another server stored. */
  onVersion: (version: RemoteVersion) => void
  /**
   * Whether this server needs versions of this workflow (it holds it, or something here watches
   * it). Versions of the others are skipped before they are decoded.
   */
  wants: (workflowId: string) => boolean
  /** A version read from a watched partition was skipped undecoded: another workflow's (metrics). */
  onSkipped?: () => void
  /** A presence update from a client of another server. */
  onAwareness: (workflowId: string, update: Uint8Array) => void
  /** The bus (re)connected: anything may have been missed, reconcile with the store. */
  onReconnect: () => void
  /** Another server forwarded updates of a workflow this server writes. */
  onForward: (forward: Forward) => void
  /** The writer stored updates this server forwarded. */
  onAck: (ack: ForwardAck) => void
  /** This server's writer lease on a workflow was taken by another server (or expired). */
  onWriterLost: (workflowId: string) => void
}

/** What the writer needs to record a forwarded update besides its bytes (JSON on the wire). */
const ForwardedInfoSchema = z.object({
  author: z.string(),
  description: z.string().optional(),
  meta: z.optional(ChangeMetaSchema),
  violations: z.array(zm.omit(ViolationRecordSchema, { id: true, workflowId: true, version: true })),
  /** Undoes the previous update's effect (a validator's compensation): relayed merged with it. */
  compensates: z.boolean()
})

/** One update forwarded to a workflow's writer, with what the writer needs to record it. */
export type ForwardedUpdate = { update: Uint8Array } & z.infer<typeof ForwardedInfoSchema>

export interface Forward {
  workflowId: string
  /** The forwarding server, where the acknowledgement goes. */
  from: string
  /** Per workflow and forwarding server; a retry reuses it (applying an update twice is a no-op). */
  seq: number
  updates: ForwardedUpdate[]
  /** The forwarding server's own clients of the workflow: a writer with none hands it the lease. */
  peers: number
}

/** The writer stored a forward: `version` holds it (or already held it, for a retry). */
export interface ForwardAck {
  workflowId: string
  seq: number
  version: number
  /** The writer handed its lease to the forwarding server, which writes the workflow from now on. */
  handoff: boolean
}

export interface Bus {
  readonly serverId: string
  start: (handlers: BusHandlers) => Promise<void>
  publishVersion: (version: RemoteVersion) => Promise<void>
  publishAwareness: (workflowId: string, update: Uint8Array) => void
  /**
   * One reason to receive the versions of `workflowId` (loaded here while another server writes
   * it, or a change stream open on it); returns its release. A server receives only what it
   * watches.
   */
  watch: (workflowId: string) => () => void
  /** Receive the versions of every workflow (the list feed is open); returns the release. */
  watchAll: () => () => void
  /** How many of the bus's version partitions this server reads now (metrics). */
  partitionsRead: () => number
  /** Runs `fn` while holding a cluster-wide lock on `key` (waits for it, bounded). */
  lock: <T>(key: string, fn: () => Promise<T>) => Promise<T>
  /**
   * The server that writes `workflowId`: this one if the lease was free (it then renews it until
   * `releaseWriter`, and reports a loss through `onWriterLost`), else the holder's id.
   */
  claimWriter: (workflowId: string) => Promise<string>
  releaseWriter: (workflowId: string) => Promise<void>
  /**
   * Passes this server's lease to server `to` in one step (no moment without a holder); false
   * when this server no longer held it. `to` renews it from its next `claimWriter` on.
   */
  handOffWriter: (workflowId: string, to: string) => Promise<boolean>
  /** Fire and forget: a lost forward is sent again after its acknowledgement fails to come. */
  forward: (to: string, forward: Forward) => void
  acknowledge: (to: string, ack: ForwardAck) => void
  close: () => Promise<void>
}

/** Versions on the wire: [meta JSON][record JSON][updates...], with lib0 encoding. */
export const encodeVersion = (v: RemoteVersion): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarString(enc, JSON.stringify(v.meta))
  encoding.writeVarString(enc, JSON.stringify(v.record))
  encoding.writeVarUint(enc, v.updates.length)
  for (const u of v.updates) encoding.writeVarUint8Array(enc, u)
  return encoding.toUint8Array(enc)
}

/** Decodes and validates a version from the bus; throws on anything malformed. */
export const decodeVersion = (data: Uint8Array): RemoteVersion => {
  const dec = decoding.createDecoder(data)
  const meta = WorkflowMetaSchema.parse(JSON.parse(decoding.readVarString(dec)))
  const record = jitted(VersionRecordSchema).parse(JSON.parse(decoding.readVarString(dec)))
  const n = decoding.readVarUint(dec)
  const updates: Uint8Array[] = []
  for (let i = 0; i < n; i++) updates.push(decoding.readVarUint8Array(dec))
  return { meta, record, updates }
}

export const encodeAwarenessMessage = (server: string, workflowId: string, update: Uint8Array): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarString(enc, server)
  encoding.writeVarString(enc, workflowId)
  encoding.writeVarUint8Array(enc, update)
  return encoding.toUint8Array(enc)
}

export const decodeAwarenessMessage = (data: Uint8Array): { server: string, workflowId: string, update: Uint8Array } => {
  const dec = decoding.createDecoder(data)
  return { server: decoding.readVarString(dec), workflowId: decoding.readVarString(dec), update: decoding.readVarUint8Array(dec) }
}

/**
 * Messages to one server: [0][workflow][from][seq][n][update, info JSON]*[peers] or
 * [1][workflow][seq][version][handoff]. The last field of each is read only when present, so a
 * server of the version before it still decodes (it reads no peers, hands nothing off).
 */
export const encodeServerMessage = (message: { forward: Forward } | { ack: ForwardAck }): Uint8Array => {
  const enc = encoding.createEncoder()
  if ('forward' in message) {
    const f = message.forward
    encoding.writeVarUint(enc, 0)
    encoding.writeVarString(enc, f.workflowId)
    encoding.writeVarString(enc, f.from)
    encoding.writeVarUint(enc, f.seq)
    encoding.writeVarUint(enc, f.updates.length)
    for (const { update, ...info } of f.updates) {
      encoding.writeVarUint8Array(enc, update)
      encoding.writeVarString(enc, JSON.stringify(info))
    }
    encoding.writeVarUint(enc, f.peers)
  } else {
    encoding.writeVarUint(enc, 1)
    encoding.writeVarString(enc, message.ack.workflowId)
    encoding.writeVarUint(enc, message.ack.seq)
    encoding.writeVarUint(enc, message.ack.version)
    encoding.writeVarUint(enc, message.ack.handoff ? 1 : 0)
  }
  return encoding.toUint8Array(enc)
}

/** Decodes and validates a message to this server; throws on anything malformed. */
export const decodeServerMessage = (data: Uint8Array): { forward: Forward } | { ack: ForwardAck } => {
  const dec = decoding.createDecoder(data)
  const kind = decoding.readVarUint(dec)
  if (kind === 1) {
    const ack = { workflowId: decoding.readVarString(dec), seq: decoding.readVarUint(dec), version: decoding.readVarUint(dec) }
    return { ack: { ...ack, handoff: decoding.hasContent(dec) && decoding.readVarUint(dec) === 1 } }
  }
  if (kind !== 0) throw new InvalidMessageError(`unknown server message ${kind}`)
  const workflowId = decoding.readVarString(dec)
  const from = decoding.readVarString(dec)
  const seq = decoding.readVarUint(dec)
  const n = decoding.readVarUint(dec)
  const updates: ForwardedUpdate[] = []
  for (let i = 0; i < n; i++) {
    const update = decoding.readVarUint8Array(dec)
    updates.push({ update, ...ForwardedInfoSchema.parse(JSON.parse(decoding.readVarString(dec))) })
  }
  const peers = decoding.hasContent(dec) ? decoding.readVarUint(dec) : 0
  return { forward: { workflowId, from, seq, updates, peers } }
}
