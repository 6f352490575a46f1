/**
 * Cutting a version: what a workflow's window of pending updates becomes when it is stored. A
 * plain function of the document as it is now, the meta of the previous version and the window:
 * the version record (author, description, RFC 6902 changes, snapshot, checksum), the meta after
 * it, numbered conflict and violation records, and every `keyframeEvery` versions a keyframe.
 */
import * as Y from 'yjs'
import { toBase64 } from 'lib0/buffer'
import jsonpatch, { type Operation } from 'fast-json-patch'
import { AccordError } from '../../src/model/errors.ts'
import { readState } from '../../src/model/json-yjs.ts'
import type { JsonObject } from '../../src/model/json.ts'
import { nextDeadline, type AgentStatus } from '../../src/model/runtime.ts'
import type { ChangeMeta, ConflictRecord, JsonPatchOp, VersionRecord, ViolationRecord } from '../../src/model/schema.ts'
import { AGENTS_ROOT } from '../../src/model/agents.ts'
import type { DetectedConflict } from '../history/conflicts.ts'
import { originAgent } from './contracts.ts'
import type { WorkflowMeta } from '../../src/store/store.ts'
import { checksumOf } from '../../src/store/checksum.ts'

/** What a remote write did wrong, before it gets a number in the window's version. */
export type ViolationDraft = Omit<ViolationRecord, 'id' | 'workflowId' | 'version'>

/** One applied update waiting for its version. */
export interface Pending {
  update: Uint8Array
  origin: unknown
  ops: Operation[]
  runtimeOps: Operation[]
  violations: ViolationDraft[]
  /** A server change undoing the previous entry's effect: broadcast merged with it. */
  compensates?: boolean
  description?: string
  meta?: ChangeMeta
  conflicts: DetectedConflict[]
}

export interface Cut {
  record: VersionRecord
  /** The meta after this version. */
  meta: WorkflowMeta
  keyframe?: Uint8Array
  conflicts: ConflictRecord[]
  violations: ViolationRecord[]
  /** The state as of this version. */
  state: JsonObject
}

export interface CutInput {
  id: string
  doc: Y.Doc
  /** The meta as of the previous version. */
  meta: WorkflowMeta
  batch: Pending[]
  keyframeEvery: number
  quotaBytes: number
  timeouts: Partial<Record<AgentStatus, number>>
  /**
   * The previous version's state when versions from other servers came since: the window's own
   * ops may not apply to it in this order, so the changes are its diff to the state instead.
   */
  diffFrom: JsonObject | null
}

export class QuotaExceededError extends AccordError {
  constructor (id: string, bytes: number, quota: number) {
    super('QUOTA_EXCEEDED', `workflow ${id} would hold ${bytes} bytes, over its quota of ${quota}`, { bytes, quota })
    this.name = 'QuotaExceededError'
  }
}


/** Builds the next version from the document as it is now (synchronously). */
export const cutVersion = ({ id, doc, meta: previous, batch, keyframeEvery, quotaBytes, timeouts, diffFrom }: CutInput): Cut => {
  const now = Date.now()
  const version = previous.head + 1
  const state = readState(doc)
  const authors = Array.from(new Set(batch.map(p => originAgent(p.origin))))
  const descriptions = Array.from(new Set(batch.flatMap(p => p.description === undefined ? [] : [p.description])))
  const record: VersionRecord = {
    workflowId: id,
    version,
    parentVersion: previous.head,
    snapshot: toBase64(Y.encodeSnapshot(Y.snapshot(doc))),
    author: authors.join(','),
    timestamp: now,
    description: descriptions.length > 0 ? descriptions.join('; ') : `update by ${authors.join(', ')}`,
    meta: Object.assign({}, ...batch.map(p => p.meta ?? {})) as ChangeMeta,
    checksum: checksumOf(state),
    changes: diffFrom !== null ? jsonpatch.compare(diffFrom, state) as JsonPatchOp[] : batch.flatMap(p => p.ops) as JsonPatchOp[]
  }
  const runtimeChanges = batch.flatMap(p => p.runtimeOps) as JsonPatchOp[]
  if (runtimeChanges.length > 0) record.runtimeChanges = runtimeChanges
  const keyframe = version % keyframeEvery === 0 ? Y.encodeStateAsUpdate(doc) : undefined
  const bytes = previous.bytes + batch.reduce((n, p) => n + p.update.length, 0) + (keyframe?.length ?? 0)
  if (bytes > quotaBytes) throw new QuotaExceededError(id, bytes, quotaBytes)
  const agents = doc.getMap<string>(AGENTS_ROOT)
  const agentOf = (client: number): string => agents.get(String(client)) ?? `client:${client}`
  let conflictId = previous.conflicts
  const conflicts: ConflictRecord[] = batch.flatMap(p => p.conflicts).map(c => ({
    id: ++conflictId,
    workflowId: id,
    path: c.path,
    writes: c.writes.map(w => ({ agent: agentOf(w.clientId), clientId: w.clientId, value: w.value })),
    winner: agentOf(c.winnerClientId),
    version,
    detectedAt: now
  }))
  let violationId = previous.violations ?? 0
  const violations: ViolationRecord[] = batch.flatMap(p => p.violations).map(v => ({ ...v, id: ++violationId, workflowId: id, version }))
  const meta: WorkflowMeta = {
    ...previous,
    updatedAt: now,
    head: version,
    conflicts: conflictId,
    violations: violationId,
    // Only runtime changes (statuses, tasks) move the next deadline.
    deadline: runtimeChanges.length > 0 ? nextDeadline(doc, timeouts) : previous.deadline ?? null,
    bytes,
    ...(keyframe === undefined ? {} : { keyframe: version })
  }
  return { record, meta, keyframe, conflicts, violations, state }
}
