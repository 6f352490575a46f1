/**
 * After-commit hook: the write-path and agent-state metrics (server/ops/metrics.ts) of each
 * version this server stored (versions applied from other servers were counted there).
 *
 *   createRegistry({ ..., hooks: [metricsHook(metrics), ...] })
 */
import type { Metrics } from '../ops/metrics.ts'
import type { CommitHook } from '../sync/commit-hooks.ts'
import type { Workflow } from '../sync/workflow.ts'

export const metricsHook = (metrics: Metrics): CommitHook => ({
  name: 'metrics',
  afterVersion: v => {
    if (v.local) metrics.version(v.workflow as Workflow, v.record, { seconds: v.seconds, updates: v.updates.length, bytes: v.bytes }, v.conflicts.length)
  }
})
