/**
 * After-commit hook: after a keyframe, versions older than the retention policy allows are
 * archived (src/store/retention.ts), as background work the server's close() waits for.
 *
 * Archiving runs one workflow at a time with a pause before each: under even load many
 * workflows reach a keyframe together. Archiving them all at once held the event loop for up to
 * 90 ms; back to back, each commit during the ~100 ms wave waited 4-11 ms on the store (median
 * p99 at 3,000 updates/s: 9.8 ms, with the pause 7.5 ms). A pass archives every interval due,
 * so a queue that falls behind catches up in larger passes.
 *
 *   createRegistry({ ..., hooks: [archivingHook({ store, retention, pausing, track }), ...] })
 */
import { archiveOldVersions, type RetentionPolicy } from '../../src/store/retention.ts'
import type { Store } from '../../src/store/store.ts'
import type { CommitHook } from '../sync/commit-hooks.ts'

/** Pause before each archiving pass, so the commits of other workflows run between passes. */
const ARCHIVE_PAUSE_MS = 10

export interface ArchivingHookOptions {
  store: Store
  retention: RetentionPolicy
  /** Whether to pause before a pass (false while the server closes: then the queue drains at once). */
  pausing: () => boolean
  /** Runs a background task the server's close() waits for, logging its failure as `what`. */
  track: (task: Promise<unknown>, what: string) => void
}

export const archivingHook = (opts: ArchivingHookOptions): CommitHook => {
  /** Workflows queued or being archived: a second keyframe meanwhile adds nothing. */
  const queued = new Set<string>()
  let queue: Promise<unknown> = Promise.resolve()
  return {
    name: 'archiving',
    afterKeyframe: wf => {
      if (queued.has(wf.id)) return
      queued.add(wf.id)
      const run = queue.then(async () => {
        if (opts.pausing()) await new Promise(resolve => setTimeout(resolve, ARCHIVE_PAUSE_MS))
        return archiveOldVersions(opts.store, wf.id, opts.retention)
      }).finally(() => queued.delete(wf.id))
      queue = run.catch(() => {})
      opts.track(run, 'archiving')
    }
  }
}
