/**
 * The history API of the server module: versions, stateAt, diff, snapshots, restore, forks,
 * conflicts, deletion. Old states are rebuilt from stored Yjs data (nearest keyframe + log,
 * replayed forward into a scratch doc) and verified against the version's checksum; the live
 * document is never rewound. Restore and promote are forward changes recorded as new versions.
 */
import { randomBytes } from 'node:crypto'
import * as Y from 'yjs'
import { toBase64 } from 'lib0/buffer'
import jsonpatch from 'fast-json-patch'
import { CloseCodes } from '../../src/model/close-codes.ts'
import { AccordError, CorruptDataError } from '../../src/model/errors.ts'
import type { JsonObject } from '../../src/model/json.ts'
import { readState, setMapContents, stateRoot } from '../../src/model/json-yjs.ts'
import { assertWorkflowId } from '../../src/model/workflow-id.ts'
import type { ConflictRecord, JsonPatchOp, SnapshotKind, SnapshotRecord, VersionRecord, ViolationRecord } from '../../src/model/schema.ts'
import type { Registry } from '../sync/registry.ts'
import { emptyMeta, type Replay, type Store, type WorkflowMeta } from '../../src/store/store.ts'
import type { Workflow } from '../sync/workflow.ts'
import { checksumOf } from '../../src/store/checksum.ts'

export class NotFoundError extends AccordError {
  constructor (message: string, details?: unknown) {
    super('NOT_FOUND', message, details)
    this.name = 'NotFoundError'
  }
}

export class InvalidRequestError extends AccordError {
  constructor (message: string, details?: unknown) {
    super('INVALID_REQUEST', message, details)
    this.name = 'InvalidRequestError'
  }
}

export interface SnapshotPolicy {
  /** Routine snapshots kept per workflow (newest first). */
  keepRoutine: number
  /** Days a recovery snapshot is kept. */
  recoveryDays: number
}

export interface HistoryContext {
  store: Store
  registry: Registry
  snapshots: SnapshotPolicy
  /** Called for every snapshot taken (metrics). */
  onSnapshot?: (record: SnapshotRecord) => void
}

const DAY = 24 * 60 * 60 * 1000

/** The workflow's meta; NotFoundError when it does not exist. */
export const requireMeta = async (ctx: HistoryContext, id: string): Promise<WorkflowMeta> => {
  assertWorkflowId(id)
  const meta = await ctx.store.getMeta(id)
  if (meta !== null) return meta
  // Open but never written: it exists, with an empty history.
  if (ctx.registry.get(id) !== undefined) return emptyMeta(id)
  throw new NotFoundError(`unknown workflow ${id}`, { workflowId: id })
}

/** Runs `fn` with the workflow loaded (and held) in memory. */
const withWorkflow = <T>(ctx: HistoryContext, id: string, fn: (wf: Workflow) => Promise<T>): Promise<T> => ctx.registry.with(id, fn)

/** The newest durable version: flushes the loaded workflow first, if any. */
const headVersion = async (ctx: HistoryContext, id: string): Promise<number> => {
  const wf = ctx.registry.get(id)
  if (wf !== undefined) {
    await wf.whenFlushed()
    return wf.head
  }
  return (await requireMeta(ctx, id)).head
}

const replayDoc = (replay: Replay): Y.Doc => {
  const doc = new Y.Doc({ gc: true })
  doc.transact(() => {
    if (replay.keyframe !== null) Y.applyUpdate(doc, replay.keyframe.state)
    for (const entry of replay.entries) for (const u of entry.updates) Y.applyUpdate(doc, u)
  })
  return doc
}

/** A scratch document holding the state at `version` (caller destroys it). */
const docAt = async (ctx: HistoryContext, id: string, version: number): Promise<Y.Doc> => {
  const meta = await requireMeta(ctx, id)
  if (!Number.isInteger(version) || version < 0 || version > meta.head) {
    throw new NotFoundError(`workflow ${id} has no version ${version} (head is ${meta.head})`, { workflowId: id, version })
  }
  return replayDoc(await ctx.store.replay(id, version))
}

export const history = async (ctx: HistoryContext, id: string, options: { limit?: number, before?: number } = {}): Promise<VersionRecord[]> => {
  await requireMeta(ctx, id)
  const limit = Math.min(Math.max(options.limit ?? 50, 1), 1000)
  return ctx.store.versions(id, { before: options.before, limit })
}

export const stateAt = async (ctx: HistoryContext, id: string, version: number): Promise<JsonObject> => {
  if (version === 0) {
    await requireMeta(ctx, id)
    return {}
  }
  const doc = await docAt(ctx, id, version)
  try {
    const state = readState(doc)
    const record = await ctx.store.version(id, version)
    if (record === null) throw new CorruptDataError(`${id}@${version}`, 'version record missing')
    if (checksumOf(state) !== record.checksum) throw new CorruptDataError(`${id}@${version}`, 'replayed state does not match the version checksum')
    return state
  } finally {
    doc.destroy()
  }
}

export const diff = async (ctx: HistoryContext, id: string, from: number, to: number): Promise<JsonPatchOp[]> => {
  const [a, b] = await Promise.all([stateAt(ctx, id, from), stateAt(ctx, id, to)])
  return jsonpatch.compare(a, b) as JsonPatchOp[]
}

export interface CreateSnapshotOptions {
  name: string
  kind?: SnapshotKind
  description?: string
  /** Bind to this version instead of the current head. */
  version?: number
  by?: string
}

export const createSnapshot = async (ctx: HistoryContext, id: string, options: CreateSnapshotOptions): Promise<SnapshotRecord> => {
  const head = await headVersion(ctx, id)
  const version = options.version ?? head
  if (!Number.isInteger(version) || version < 0 || version > head) throw new NotFoundError(`workflow ${id} has no version ${version}`)
  const record: SnapshotRecord = {
    // Time-ordered ids: listing sorts by creation time, then id (hrtime breaks same-ms ties).
    id: `snap-${Date.now().toString(36)}-${process.hrtime.bigint().toString(36).slice(-8)}-${randomBytes(3).toString('hex')}`,
    workflowId: id,
    name: options.name,
    kind: options.kind ?? 'manual',
    description: options.description ?? '',
    version,
    createdAt: Date.now(),
    createdBy: options.by ?? 'accord'
  }
  await ctx.store.putSnapshot(record)
  ctx.onSnapshot?.(record)
  await pruneSnapshots(ctx, id)
  return record
}

/** Applies the snapshot policy: newest `keepRoutine` routine snapshots, recovery ones for N days. */
export const pruneSnapshots = async (ctx: HistoryContext, id: string, now = Date.now()): Promise<string[]> => {
  const all = await ctx.store.listSnapshots(id)
  const routine = all.filter(s => s.kind === 'routine')
  const doomed = [
    ...routine.slice(0, Math.max(0, routine.length - ctx.snapshots.keepRoutine)),
    ...all.filter(s => s.kind === 'recovery' && s.createdAt < now - ctx.snapshots.recoveryDays * DAY)
  ].map(s => s.id)
  if (doomed.length > 0) await ctx.store.deleteSnapshots(id, doomed)
  return doomed
}

export const listSnapshots = async (ctx: HistoryContext, id: string): Promise<SnapshotRecord[]> => {
  await requireMeta(ctx, id)
  return ctx.store.listSnapshots(id)
}

export const deleteSnapshot = async (ctx: HistoryContext, id: string, snapshotId: string): Promise<void> => {
  if (await ctx.store.getSnapshot(id, snapshotId) === null) throw new NotFoundError(`unknown snapshot ${snapshotId}`)
  await ctx.store.deleteSnapshots(id, [snapshotId])
}

export interface RestoreOptions {
  version?: number
  snapshotId?: string
  by?: string
}

/** Makes the current content equal to an old version's, as a new version. Returns it. */
export const restore = async (ctx: HistoryContext, id: string, options: RestoreOptions): Promise<VersionRecord> => {
  let version = options.version
  let label = `version ${String(version)}`
  if (options.snapshotId !== undefined) {
    const snap = await ctx.store.getSnapshot(id, options.snapshotId)
    if (snap === null) throw new NotFoundError(`unknown snapshot ${options.snapshotId}`)
    version = snap.version
    label = `snapshot "${snap.name}" (version ${snap.version})`
  }
  if (version === undefined) throw new InvalidRequestError('restore needs a version or a snapshotId')
  const target = await stateAt(ctx, id, version)
  return withWorkflow(ctx, id, async wf => {
    wf.transact(() => { setMapContents(stateRoot(wf.doc), target) }, { agentId: options.by ?? 'accord' }, { description: `restored from ${label}` })
    await wf.whenFlushed(Number.POSITIVE_INFINITY)
    const record = await ctx.store.version(id, wf.head)
    if (record === null) throw new AccordError('STORAGE_FAILURE', `restore of ${id} was not stored`)
    return record
  })
}

/** Creates a new workflow starting from `version` (default: head) of `id`; returns its id. */
export const fork = async (ctx: HistoryContext, id: string, options: { version?: number, by?: string, forkId?: string } = {}): Promise<{ workflowId: string, version: number }> => {
  const version = options.version ?? await headVersion(ctx, id)
  const doc = await docAt(ctx, id, version)
  try {
    const forkId = options.forkId ?? `${id.slice(0, 100)}.fork-${randomBytes(5).toString('hex')}`
    assertWorkflowId(forkId)
    if (await ctx.store.getMeta(forkId) !== null) throw new InvalidRequestError(`workflow ${forkId} already exists`)
    const state = Y.encodeStateAsUpdate(doc)
    const json = readState(doc)
    const now = Date.now()
    const meta: WorkflowMeta = { ...emptyMeta(forkId, now), head: 1, bytes: state.length * 2, forkOf: { workflowId: id, version } }
    await ctx.store.commit(forkId, {
      meta,
      updates: [state],
      keyframe: state,
      record: {
        workflowId: forkId,
        version: 1,
        parentVersion: 0,
        snapshot: toBase64(Y.encodeSnapshot(Y.snapshot(doc))),
        author: options.by ?? 'accord',
        timestamp: now,
        description: `forked from ${id} at version ${version}`,
        meta: {},
        checksum: checksumOf(json),
        changes: jsonpatch.compare({}, json) as JsonPatchOp[]
      }
    })
    return { workflowId: forkId, version }
  } finally {
    doc.destroy()
  }
}

const requireFork = async (ctx: HistoryContext, forkId: string): Promise<NonNullable<WorkflowMeta['forkOf']>> => {
  const meta = await requireMeta(ctx, forkId)
  if (meta.forkOf === undefined) throw new InvalidRequestError(`workflow ${forkId} is not a fork`)
  return meta.forkOf
}

/** Merges a fork's changes into its parent (a new parent version), then deletes the fork. */
export const promote = async (ctx: HistoryContext, forkId: string, options: { by?: string } = {}): Promise<VersionRecord> => {
  const { workflowId: parentId } = await requireFork(ctx, forkId)
  const record = await withWorkflow(ctx, forkId, async forkWf => {
    await forkWf.whenFlushed(Number.POSITIVE_INFINITY)
    return withWorkflow(ctx, parentId, async parent => {
      const update = Y.encodeStateAsUpdate(forkWf.doc, Y.encodeStateVector(parent.doc))
      parent.transact(() => { Y.applyUpdate(parent.doc, update) }, { agentId: options.by ?? 'accord' }, { description: `promoted fork ${forkId}` })
      await parent.whenFlushed(Number.POSITIVE_INFINITY)
      const rec = await ctx.store.version(parentId, parent.head)
      if (rec === null) throw new AccordError('STORAGE_FAILURE', `promotion into ${parentId} was not stored`)
      return rec
    })
  })
  await deleteWorkflow(ctx, forkId)
  return record
}

export const discard = async (ctx: HistoryContext, forkId: string): Promise<void> => {
  await requireFork(ctx, forkId)
  await deleteWorkflow(ctx, forkId)
}

/** Closes the workflow's clients (4404), unloads it and removes all its keys in one batch. */
export const deleteWorkflow = async (ctx: HistoryContext, id: string): Promise<void> => {
  await requireMeta(ctx, id)
  await ctx.registry.drop(id, CloseCodes.deleted, () => ctx.store.deleteWorkflow(id))
}

export const conflicts = async (ctx: HistoryContext, id: string): Promise<ConflictRecord[]> => {
  await requireMeta(ctx, id)
  return ctx.store.listConflicts(id)
}

export const violations = async (ctx: HistoryContext, id: string): Promise<ViolationRecord[]> => {
  await requireMeta(ctx, id)
  return ctx.store.listViolations(id)
}
