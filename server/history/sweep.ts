/**
 * The maintenance sweep (createServer runs it every `sweepIntervalMs`, `server.sweep()` now):
 * over every stored workflow, versions past the retention policy are archived and snapshots
 * pruned; with `deleteIdleAfterDays`, workflows without edits for that long and not in memory
 * are deleted.
 *
 *   await sweepWorkflows(ctx, { retention, deleteIdleAfterDays: 90, log })
 */
import { archiveOldVersions, type RetentionPolicy } from '../../src/store/retention.ts'
import type { Logger } from '../ops/log.ts'
import { pruneSnapshots, type HistoryContext } from './history.ts'

const DAY = 24 * 60 * 60 * 1000

export interface SweepOptions {
  retention: RetentionPolicy
  /** Delete workflows without edits for this many days; undefined: never. */
  deleteIdleAfterDays: number | undefined
  log: Logger
}

export const sweepWorkflows = async (ctx: HistoryContext, opts: SweepOptions, now = Date.now()): Promise<void> => {
  const { store, registry } = ctx
  for (const meta of await store.listWorkflows()) {
    const idle = opts.deleteIdleAfterDays !== undefined && meta.updatedAt < now - opts.deleteIdleAfterDays * DAY
    if (idle && registry.get(meta.id) === undefined && !registry.loaded().includes(meta.id)) {
      opts.log.info('deleting idle workflow', { workflowId: meta.id, updatedAt: meta.updatedAt })
      await store.deleteWorkflow(meta.id)
      continue
    }
    await archiveOldVersions(store, meta.id, opts.retention, now)
    await pruneSnapshots(ctx, meta.id, now)
  }
}

