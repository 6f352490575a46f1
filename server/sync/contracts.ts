/**
 * The contracts the sync modules share: who made a change (ChangeOrigin) and why (Described),
 * what a workflow needs from a connection (Peer), a version another server stored
 * (RemoteVersion), and the two small encoders both sides use. They live here, not in
 * workflow.ts, so fanout, version-cut, the writers and the bus can name them without importing
 * the workflow (no import cycles, type-only included).
 */
import * as encoding from 'lib0/encoding'
import type * as awarenessProtocol from 'y-protocols/awareness'
import { encodeAwarenessUpdate } from 'y-protocols/awareness'
import type { CloseCode } from '../../src/model/close-codes.ts'
import { MessageType } from '../../src/model/protocol.ts'
import type { ChangeMeta, VersionRecord } from '../../src/model/schema.ts'
import type { WorkflowMeta } from '../../src/store/store.ts'

/** Who made a change. Connections and server-side writers (restore, ...) both are. */
export interface ChangeOrigin {
  readonly agentId: string
}

/**
 * Why: the description and tracing meta a writer gives one change (what its version record
 * says). Passed with the change (`applyPeerUpdate`, `transact`), never looked up on the origin.
 */
export interface Described {
  description?: string
  meta?: ChangeMeta
}

/** What a workflow needs from a connection. */
export interface Peer extends ChangeOrigin {
  readonly id: number
  /** Speaks Accord's extension (gets author annotations). */
  readonly extended: boolean
  /** Paths this peer may write (JSON-pointer patterns), or null when unrestricted. */
  readonly writePaths: string[] | null
  send: (message: Uint8Array) => void
  close: (code: CloseCode, detail?: string) => void
}

/** A version another server stored: its record, the meta after it and its updates. */
export interface RemoteVersion {
  meta: WorkflowMeta
  record: VersionRecord
  updates: Uint8Array[]
}

export const encodeAwareness = (awareness: awarenessProtocol.Awareness, clients: number[]): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MessageType.awareness)
  encoding.writeVarUint8Array(enc, encodeAwarenessUpdate(awareness, clients))
  return encoding.toUint8Array(enc)
}

/** The agent an update's origin names ('accord' for the server's own writes). */
export const originAgent = (origin: unknown): string =>
  typeof origin === 'object' && origin !== null && typeof (origin as ChangeOrigin).agentId === 'string'
    ? (origin as ChangeOrigin).agentId
    : 'accord'
