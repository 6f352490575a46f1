/**
 * The messages between the inspector's page (app.js) and its data worker (worker.js). The
 * worker holds what is big: the live Y.Doc (through the SDK's `openWorkflow`) and the JSON
 * states of an opened version; the page asks it for the open part of a tree (`watch`) and gets
 * small views and change notifications back, so no multi-megabyte parse or Yjs update runs on
 * the page's thread.
 *
 * Both ends are the same build of this folder and nothing else can post to a dedicated worker,
 * so these are TS types only (no zod: it would be the largest part of the page bundle).
 *
 *   worker.postMessage({ type: 'live', sid: 1, id: 'wf', token: null, after: 3 } satisfies ToWorker)
 */
import type { RuntimeState, VersionRecord } from '../index.ts'

/** One child of an open container, as the tree shows it. */
export interface Entry {
  key: string
  /** 'container' for an object or array (then size/list are set), else the JSON type of the scalar. */
  type: 'string' | 'number' | 'boolean' | 'null' | 'container' | 'other'
  /** The scalar as JSON text, cut at 300 characters ('' for a container). */
  text: string
  /** The first 5000 characters of a string longer than 300. */
  title?: string
  size?: number
  list?: boolean
}

/** An open container: its size and its first `limit` children (map keys sorted). */
export interface NodeView {
  size: number
  list: boolean
  entries: Entry[]
}

/** One row of a diff: the op, its path, and the values before and after as text (null: absent). */
export interface DiffRow {
  op: string
  path: string
  before: string | null
  after: string | null
}

/** A version record as the page shows it: without its ops and Yjs snapshot (a 5 MB change is a 5 MB record). */
export type RecordSummary = Omit<VersionRecord, 'changes' | 'runtimeChanges' | 'snapshot'>

export const summaryOf = (record: VersionRecord): RecordSummary => {
  const { changes: _changes, runtimeChanges: _runtime, snapshot: _snapshot, ...summary } = record
  return summary
}

export interface Peer {
  clientId: number
  agentId: string
}

export interface WireError {
  code: string
  message: string
  details?: unknown
}

export type ToWorker =
  /** Open a workflow live (session `sid`); `after`: the newest version the page knows. */
  | { type: 'live', sid: number, id: string, token: string | null, after: number }
  /** Load the diff from version `from` to `to`, and the state at `to`. */
  | { type: 'version', sid: number, id: string, from: number, to: number, token: string | null }
  /** Keep the page told about the container at `path` (a JSON pointer), its first `limit` children. */
  | { type: 'watch', sid: number, path: string, limit: number }
  | { type: 'unwatch', sid: number, path: string }
  /** Every row of a version's diff (the first message holds the first OPS_SHOWN). */
  | { type: 'rows', sid: number }
  /** A version's ops as JSON text, cut at RAW_CHARS. */
  | { type: 'raw', sid: number }
  | { type: 'close', sid: number }
  /** One page of the timeline (GET .../history), read and parsed here; answered with 'history' and then forgotten. */
  | { type: 'history', sid: number, id: string, token: string | null, limit: number, before: number }

export type FromWorker =
  | { type: 'views', sid: number, views: Array<[string, NodeView | null]> }
  /** A live workflow's news; `changed`: the paths changed since the last message; runtime only when it changed. */
  | { type: 'live', sid: number, synced: boolean, head: number, presence: Peer[], changed: string[], runtime?: RuntimeState }
  | { type: 'history', sid: number, records: RecordSummary[] }
  | { type: 'version', sid: number, record: RecordSummary | null, count: number, rows: DiffRow[], changed: string[] }
  | { type: 'rows', sid: number, rows: DiffRow[] }
  | { type: 'raw', sid: number, text: string }
  | { type: 'error', sid: number, error: WireError }

/** Diff rows sent before "show all": a restore of a big state can be thousands of ops. */
export const OPS_SHOWN = 300
/** Raw ops text is cut here (one op can hold a whole 5 MB state). */
export const RAW_CHARS = 100_000
/** Children of a tree node shown at a time. */
export const TREE_PAGE = 200
/** The SDK agent id the inspector connects as. */
export const INSPECTOR_AGENT = 'inspector'
