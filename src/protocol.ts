/**
 * Message types on the wire. 0-3 are the standard y-websocket messages (the payloads are
 * encoded by y-protocols); everything Accord adds later uses types >= 100 and is sent only to
 * connections that announced support, because stock clients log an error on unknown types.
 */
export const MessageType = {
  sync: 0,
  awareness: 1,
  auth: 2,
  queryAwareness: 3
} as const

export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType]
