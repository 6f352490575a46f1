/**
 * The storage interface every backend implements (LevelDB now). It speaks in workflow terms
 * (log entries, keyframes) so the server never sees keys; one writer per workflow is assumed
 * (the loaded workflow's own queue), different workflows write independently.
 */
import { z } from 'zod'

export const WorkflowMetaSchema = z.object({
  id: z.string(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  /** Highest sequence number used by the log or a keyframe. */
  lastSeq: z.number().int().nonnegative()
})
export type WorkflowMeta = z.infer<typeof WorkflowMetaSchema>

export interface StoredWorkflow {
  meta: WorkflowMeta | null
  /** Newest keyframe (full state) or null. */
  keyframe: Uint8Array | null
  /** Updates logged after the keyframe, oldest first. */
  updates: Uint8Array[]
}

export interface Store {
  /** Reads what is needed to rebuild a workflow's document. Throws CorruptDataError on damage. */
  load: (id: string) => Promise<StoredWorkflow>
  /** Appends updates with sequence numbers firstSeq, firstSeq+1, ... in one atomic write. */
  append: (id: string, firstSeq: number, updates: Uint8Array[], meta: WorkflowMeta) => Promise<void>
  /**
   * Atomically writes `state` as the keyframe at `seq` and deletes every log entry and older
   * keyframe it covers (sequence numbers <= seq).
   */
  compact: (id: string, seq: number, state: Uint8Array, meta: WorkflowMeta) => Promise<void>
  /** Number of log entries currently stored for a workflow (for tests and tools). */
  countLog: (id: string) => Promise<number>
  listWorkflows: () => Promise<WorkflowMeta[]>
  deleteWorkflow: (id: string) => Promise<void>
  close: () => Promise<void>
}
