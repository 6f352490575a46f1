/**
 * The history API of an SDK handle: thin typed calls to the server over the extension protocol.
 * `workflowId` defaults to the handle's workflow.
 */
import type { JsonObject } from '../model/json.ts'
import type { ConflictRecord, JsonPatchOp, SnapshotKind, SnapshotRecord, VersionRecord } from '../model/schema.ts'

type Request = <T>(method: string, params?: Record<string, unknown>) => Promise<T>

export interface HistoryApi {
  /** Versions newest first, `limit` (default 50) before version `before`. */
  history: (options?: { limit?: number, before?: number, workflowId?: string }) => Promise<VersionRecord[]>
  stateAt: (version: number, options?: { workflowId?: string }) => Promise<JsonObject>
  /** RFC 6902 ops from version `from`'s state to version `to`'s. */
  diff: (from: number, to: number, options?: { workflowId?: string }) => Promise<JsonPatchOp[]>
  createSnapshot: (options: { name: string, kind?: SnapshotKind, description?: string, version?: number, workflowId?: string }) => Promise<SnapshotRecord>
  listSnapshots: (options?: { workflowId?: string }) => Promise<SnapshotRecord[]>
  deleteSnapshot: (snapshotId: string, options?: { workflowId?: string }) => Promise<void>
  /** A forward change making the content equal to an old version's; returns the new version. */
  restore: (target: { version: number } | { snapshotId: string }, options?: { workflowId?: string }) => Promise<VersionRecord>
  /** A new workflow starting from `version` (default: now); open it with openWorkflow(workflowId). */
  fork: (options?: { version?: number, workflowId?: string }) => Promise<{ workflowId: string, version: number }>
  /** Merges a fork's changes into its parent as a new version and deletes the fork. */
  promote: (forkId: string) => Promise<VersionRecord>
  /** Deletes a fork without merging it. */
  discard: (forkId: string) => Promise<void>
  conflicts: (options?: { workflowId?: string }) => Promise<ConflictRecord[]>
}

export const createHistoryApi = (request: Request): HistoryApi => ({
  history: (o = {}) => request('history', o),
  stateAt: (version, o = {}) => request('stateAt', { ...o, version }),
  diff: (from, to, o = {}) => request('diff', { ...o, from, to }),
  createSnapshot: o => request('createSnapshot', o),
  listSnapshots: (o = {}) => request('listSnapshots', o),
  deleteSnapshot: async (snapshotId, o = {}) => { await request('deleteSnapshot', { ...o, snapshotId }) },
  restore: (target, o = {}) => request('restore', { ...o, ...target }),
  fork: (o = {}) => request('fork', o),
  promote: forkId => request('promote', { forkId }),
  discard: async forkId => { await request('discard', { forkId }) },
  conflicts: (o = {}) => request('conflicts', o)
})
