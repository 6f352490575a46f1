/**
 * The bus between Accord servers that share one store (cluster mode). It carries three things:
 * versions a server stored (so the others apply and relay them without reading the store),
 * awareness (presence) updates, and short cluster-wide locks (task claims).
 *
 * The bus is only the fast path: a server that misses a version (its bus connection dropped, the
 * stream was trimmed) still converges, because every loaded workflow is reconciled against the
 * durable store's head periodically and whenever a commit finds the head moved.
 * Implementation: bus-redis.ts (Redis Streams for versions, pub/sub for presence, SET NX locks).
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { VersionRecordSchema } from '../src/schema.ts'
import { WorkflowMetaSchema } from './store/store.ts'
import type { RemoteVersion } from './workflow.ts'

export interface BusHandlers {
  /** A version another server stored. */
  onVersion: (version: RemoteVersion) => void
  /** A presence update from a client of another server. */
  onAwareness: (workflowId: string, update: Uint8Array) => void
  /** The bus (re)connected: anything may have been missed, reconcile with the store. */
  onReconnect: () => void
}

export interface Bus {
  readonly serverId: string
  start: (handlers: BusHandlers) => Promise<void>
  publishVersion: (version: RemoteVersion) => Promise<void>
  publishAwareness: (workflowId: string, update: Uint8Array) => void
  /** Runs `fn` while holding a cluster-wide lock on `key` (waits for it, bounded). */
  lock: <T>(key: string, fn: () => Promise<T>) => Promise<T>
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
  const record = VersionRecordSchema.parse(JSON.parse(decoding.readVarString(dec)))
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
