/**
 * The storage interface every backend implements (LevelDB now). It speaks in workflow terms
 * (versions, keyframes, archive chunks) so the server never sees keys. One writer per workflow is
 * assumed (the loaded workflow's own queue); different workflows write independently.
 */
import { z } from 'zod'
import type { ConflictRecord, SnapshotRecord, VersionRecord, ViolationRecord } from '../model/schema.ts'

export const WorkflowMetaSchema = z.object({
  id: z.string(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  /** Newest version (0: no change stored yet). */
  head: z.number().int().nonnegative(),
  /** Version of the newest keyframe, when known (load reads it directly). */
  keyframe: z.number().int().nonnegative().optional(),
  /** Last conflict number used. */
  conflicts: z.number().int().nonnegative(),
  /** Last violation number used. */
  violations: z.number().int().nonnegative().optional(),
  /** When the runtime next needs the server (agent timeout, task lease), for the monitor. */
  deadline: z.number().nullable().optional(),
  /** Approximate bytes of hot data written (quota accounting). */
  bytes: z.number().nonnegative(),
  /** Set for forks: where the fork started. */
  forkOf: z.object({ workflowId: z.string(), version: z.number().int().nonnegative() }).optional()
})
export type WorkflowMeta = z.infer<typeof WorkflowMetaSchema>

export const emptyMeta = (id: string, now = Date.now()): WorkflowMeta =>
  ({ id, createdAt: now, updatedAt: now, head: 0, conflicts: 0, bytes: 0 })

/** The updates that make up one version. */
export interface VersionEntry {
  version: number
  updates: Uint8Array[]
}

export interface Keyframe {
  version: number
  state: Uint8Array
}

/** What is needed to rebuild the document at some version: a keyframe and the entries after it. */
export interface Replay {
  keyframe: Keyframe | null
  entries: VersionEntry[]
}

export interface StoredWorkflow extends Replay {
  meta: WorkflowMeta | null
}

/** Everything one flush window persists, written as one atomic batch. */
export interface Commit {
  meta: WorkflowMeta
  record: VersionRecord
  updates: Uint8Array[]
  /** Full state after this version, when this version gets a keyframe. */
  keyframe?: Uint8Array
  conflicts?: ConflictRecord[]
  violations?: ViolationRecord[]
}

export interface Store {
  /** The newest keyframe plus every log entry after it. Throws CorruptDataError on damage. */
  load: (id: string) => Promise<StoredWorkflow>
  getMeta: (id: string) => Promise<WorkflowMeta | null>
  /**
   * The stored head of every workflow in `ids` that exists, in one round trip where the backend
   * allows (the cluster compares every loaded workflow with the store each second: one query per
   * server instead of one per workflow). Optional: without it, callers ask getMeta per id.
   */
  heads?: (ids: string[]) => Promise<Map<string, number>>
  putMeta: (meta: WorkflowMeta) => Promise<void>
  commit: (id: string, commit: Commit) => Promise<void>
  /** Keyframe at or before `version` and the entries up to `version` (hot or archived). */
  replay: (id: string, version: number) => Promise<Replay>
  /** One version record (hot or archived), or null. */
  version: (id: string, version: number) => Promise<VersionRecord | null>
  /** Version records newest first, strictly before `before` when given. */
  versions: (id: string, options: { before?: number, limit: number }) => Promise<VersionRecord[]>
  /** Version records with version > after, oldest first (gap recovery for subscribers). */
  versionsAfter: (id: string, after: number, limit: number) => Promise<VersionRecord[]>
  /**
   * Moves versions (from, to] into one compressed archive chunk, where `from` is 0 or a keyframe
   * version and `to` is a keyframe version, in one atomic batch.
   */
  archive: (id: string, from: number, to: number) => Promise<void>
  /** Versions <= this live in archive chunks (0: none). */
  archivedThrough: (id: string) => Promise<number>
  /** Versions of the hot keyframes, ascending. */
  keyframes: (id: string) => Promise<number[]>
  putSnapshot: (record: SnapshotRecord) => Promise<void>
  getSnapshot: (id: string, snapshotId: string) => Promise<SnapshotRecord | null>
  listSnapshots: (id: string) => Promise<SnapshotRecord[]>
  deleteSnapshots: (id: string, snapshotIds: string[]) => Promise<void>
  putConflict: (record: ConflictRecord, meta?: WorkflowMeta) => Promise<void>
  listConflicts: (id: string) => Promise<ConflictRecord[]>
  listViolations: (id: string) => Promise<ViolationRecord[]>
  /** Number of hot log entries stored for a workflow (tests and tools). */
  countLog: (id: string) => Promise<number>
  listWorkflows: () => Promise<WorkflowMeta[]>
  /** Checks every stored value (checksums, framing, key layout); returns the problems found. */
  scan: () => Promise<Array<{ key: string, problem: string }>>
  /**
   * Every stored record as its LevelDB key and raw value, from one consistent point in time
   * (backups; LevelDB yields them in key order, PostgreSQL table by table). Backends without
   * persistence leave it out.
   */
  exportRecords?: () => AsyncIterable<[string, Uint8Array]>
  /** Removes every key of the workflow in one atomic batch. */
  deleteWorkflow: (id: string) => Promise<void>
  close: () => Promise<void>
}
