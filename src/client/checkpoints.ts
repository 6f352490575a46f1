/**
 * Checkpoint policies on top of the history API (snapshots + restore):
 *
 *  - `withCheckpoint(api, fn)`: a `pre_operation` snapshot around a risky operation; if `fn`
 *    throws, the workflow is restored to it (a forward change every peer converges to) and the
 *    original error is rethrown.
 *  - `autoCheckpoint(api, options)`: a `routine` snapshot every `intervalMs`, keeping the newest
 *    `keep`; plus `checkpoint('completion' | 'error')` for the handle to call on those events.
 *
 * Both only talk to the server through the given API, so they work with any handle (or a stub).
 */
import { AccordError, ClosedError } from '../model/errors.ts'
import type { HistoryApi } from './history-api.ts'
import type { SnapshotKind, SnapshotRecord } from '../model/schema.ts'

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/**
 * `fn` failed and restoring the checkpoint failed too. `cause` is the ORIGINAL error of `fn`;
 * `restoreError` is why the restore failed. The snapshot is kept so it can be restored by hand.
 * `code` is the restore error's code when it has one (e.g. `WORKFLOW_UNAVAILABLE`, `TIMEOUT`).
 */
export class CheckpointRestoreError extends AccordError {
  readonly snapshot: SnapshotRecord
  readonly restoreError: unknown

  constructor (snapshot: SnapshotRecord, original: unknown, restoreError: unknown) {
    super(
      restoreError instanceof AccordError ? restoreError.code : 'WORKFLOW_UNAVAILABLE',
      `the operation failed (${messageOf(original)}) and restoring checkpoint "${snapshot.name}" ` +
        `(snapshot ${snapshot.id}, version ${snapshot.version}) failed too: ${messageOf(restoreError)}. ` +
        'The workflow may still hold the failed operation\'s changes; the snapshot is kept for a manual ' +
        'restore. The original error is this error\'s cause.',
      { snapshotId: snapshot.id, version: snapshot.version, restoreError: messageOf(restoreError) },
      { cause: original }
    )
    this.name = 'CheckpointRestoreError'
    this.snapshot = snapshot
    this.restoreError = restoreError
  }
}

export interface WithCheckpointOptions {
  /** Snapshot name (default `checkpoint <ISO time>`). */
  name?: string
  description?: string
  /**
   * Called when deleting the snapshot afterwards fails (the operation's outcome stands: its
   * result is returned or its error rethrown). Default: ignored, the snapshot stays listed.
   */
  onCleanupError?: (err: unknown, snapshot: SnapshotRecord) => void
}

/**
 * Takes a `pre_operation` snapshot, runs `fn`, and:
 *  - on success deletes the snapshot and returns `fn`'s result;
 *  - if `fn` throws (or rejects), restores the snapshot, deletes it and rethrows the original
 *    error; if the restore fails, throws a `CheckpointRestoreError` (an `AccordError`) whose
 *    `cause` is the original error, and keeps the snapshot.
 * If the snapshot cannot be taken, `fn` does not run and that error is thrown.
 *
 * Restore is a forward change that makes the whole state equal to the snapshot's: edits other
 * agents made while `fn` ran are reverted too. Local edits `fn` made before throwing travel to
 * the server ahead of the restore request on the same socket, so they are reverted; edits made
 * while disconnected reach the server only after the restore and survive it.
 */
export const withCheckpoint = async <R>(
  api: Pick<HistoryApi, 'createSnapshot' | 'deleteSnapshot' | 'restore'>,
  fn: () => R | Promise<R>,
  options: WithCheckpointOptions = {}
): Promise<R> => {
  const snapshot = await api.createSnapshot({
    name: options.name ?? `checkpoint ${new Date().toISOString()}`,
    kind: 'pre_operation',
    description: options.description
  })
  const cleanup = async (): Promise<void> => {
    try {
      await api.deleteSnapshot(snapshot.id)
    } catch (err) {
      try { options.onCleanupError?.(err, snapshot) } catch { /* a reporting callback must not change the outcome */ }
    }
  }
  let result: R
  try {
    result = await fn()
  } catch (original) {
    try {
      await api.restore({ snapshotId: snapshot.id })
    } catch (restoreError) {
      throw new CheckpointRestoreError(snapshot, original, restoreError)
    }
    await cleanup()
    throw original
  }
  await cleanup()
  return result
}

export type CheckpointReason = 'interval' | 'completion' | 'error'

export interface AutoCheckpointOptions {
  /** Take a routine snapshot this often (ms). Without it, only explicit `checkpoint()` calls. */
  intervalMs?: number
  /** Routine snapshots kept (newest first, default 3); older ones are deleted after each checkpoint. */
  keep?: number
  /** Whether the handle should call `checkpoint('completion')` when a task completes. */
  onCompletion?: boolean
  /** Whether the handle should call `checkpoint('error')` when an agent enters the error status. */
  onError?: boolean
  /** Failures of timer-driven checkpoints and of pruning (never unhandled rejections). */
  onFailure?: (err: unknown) => void
}

export interface AutoCheckpoint {
  /**
   * Takes a snapshot named `auto <reason> <ISO time>` now, then prunes routine snapshots beyond
   * `keep`. `interval` and `completion` snapshots are `routine`; `error` ones are `recovery` (the
   * server keeps those for `recoveryDays`, so the state at an error is not pruned away by the
   * next ticks). Rejects with `ClosedError` after `stop()`.
   */
  checkpoint: (reason: CheckpointReason) => Promise<SnapshotRecord>
  /** Stops the timer; later `checkpoint()` calls reject. A checkpoint in flight completes. */
  stop: () => void
  readonly onCompletion: boolean
  readonly onError: boolean
}

const KIND: Record<CheckpointReason, SnapshotKind> = { interval: 'routine', completion: 'routine', error: 'recovery' }

export const autoCheckpoint = (
  api: Pick<HistoryApi, 'createSnapshot' | 'listSnapshots' | 'deleteSnapshot'>,
  options: AutoCheckpointOptions
): AutoCheckpoint => {
  const { intervalMs } = options
  const keep = options.keep ?? 3
  if (intervalMs !== undefined && !(Number.isFinite(intervalMs) && intervalMs > 0)) {
    throw new AccordError('INVALID_REQUEST', `autoCheckpoint intervalMs must be a positive number of ms, got ${String(intervalMs)}`)
  }
  if (!(Number.isInteger(keep) && keep >= 1)) {
    throw new AccordError('INVALID_REQUEST', `autoCheckpoint keep must be an integer >= 1, got ${String(keep)}`)
  }
  let stopped = false
  let timer: ReturnType<typeof setTimeout> | null = null

  const report = (err: unknown): void => {
    try { options.onFailure?.(err) } catch { /* a reporting callback must not throw into a timer */ }
  }

  const prune = async (): Promise<void> => {
    const routine = (await api.listSnapshots())
      .filter(s => s.kind === 'routine')
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    for (const s of routine.slice(0, Math.max(0, routine.length - keep))) {
      try {
        await api.deleteSnapshot(s.id)
      } catch (err) {
        // Another pruner (the server's own policy, another agent) may have been faster.
        if (!(err instanceof AccordError && err.code === 'NOT_FOUND')) throw err
      }
    }
  }

  const checkpoint = async (reason: CheckpointReason): Promise<SnapshotRecord> => {
    if (stopped) throw new ClosedError('autoCheckpoint')
    const record = await api.createSnapshot({
      name: `auto ${reason} ${new Date().toISOString()}`,
      kind: KIND[reason],
      description: `automatic checkpoint (${reason})`
    })
    // The snapshot exists; a failed prune is reported, not turned into a failed checkpoint.
    await prune().catch(report)
    return record
  }

  // A chain of timeouts rather than an interval: a slow checkpoint never overlaps the next one.
  const schedule = (): void => {
    if (stopped || intervalMs === undefined) return
    timer = setTimeout(() => {
      timer = null
      void checkpoint('interval').then(() => {}, err => { if (!stopped || !(err instanceof ClosedError)) report(err) })
        .finally(schedule)
    }, intervalMs)
  }
  schedule()

  return {
    checkpoint,
    stop: () => {
      stopped = true
      if (timer !== null) clearTimeout(timer)
      timer = null
    },
    onCompletion: options.onCompletion ?? false,
    onError: options.onError ?? false
  }
}
