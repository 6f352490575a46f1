/**
 * After-commit hook: a workflow's next runtime deadline (lifecycle timeout or task lease) goes
 * to the runtime monitor (server/runtime/runtime.ts), which enforces it when due.
 *
 *   createRegistry({ ..., hooks: [deadlinesHook((id, deadline) => { monitor.note(id, deadline) }), ...] })
 */
import type { CommitHook } from '../sync/commit-hooks.ts'

/** `note` is the monitor's: a function, since the monitor is made after the registry it watches. */
export const deadlinesHook = (note: (workflowId: string, deadline: number | null) => void): CommitHook => ({
  name: 'deadlines',
  deadlineChanged: (wf, deadline) => { note(wf.id, deadline) }
})
