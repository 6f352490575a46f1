/**
 * The list feed: one event per persisted version of any workflow, for views of many workflows
 * (the inspector's workflow list, `GET /v1/watch/workflows`), which the per-workflow change feed
 * (feed.ts) cannot give. In memory only: a listener hears versions from when it subscribes.
 *
 *   const watch = createListWatch()
 *   const stop = watch.subscribe(event => { ... })   // the route filters by read right
 *   watch.publish(record)                            // server/hooks/feed.ts, after each version
 */
import { z } from 'zod'
import type { VersionRecord } from '../../src/model/schema.ts'

/** One event of the list feed: a workflow reached a new version. */
export const WorkflowEventSchema = z.object({
  workflowId: z.string(),
  version: z.number().int().positive(),
  updatedAt: z.number().int(),
  author: z.string()
})
export type WorkflowEvent = z.infer<typeof WorkflowEventSchema>

export interface ListWatch {
  publish: (record: VersionRecord) => void
  subscribe: (listener: (event: WorkflowEvent) => void) => () => void
  /** Whether anyone here watches the list (else remote versions of unloaded workflows need not be decoded for it). */
  active: () => boolean
}

export interface ListWatchOptions {
  /** The first watcher arrived; returns what to run when the last one leaves (cluster: receive every workflow's versions). */
  onActive?: () => () => void
}

export const createListWatch = (options: ListWatchOptions = {}): ListWatch => {
  const listeners = new Set<(event: WorkflowEvent) => void>()
  let inactive: (() => void) | null = null
  return {
    publish: record => {
      if (listeners.size === 0) return
      const event = { workflowId: record.workflowId, version: record.version, updatedAt: record.timestamp, author: record.author }
      for (const listener of listeners) listener(event)
    },
    subscribe: listener => {
      listeners.add(listener)
      if (listeners.size === 1 && options.onActive !== undefined) inactive = options.onActive()
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0) return
        inactive?.()
        inactive = null
      }
    },
    active: () => listeners.size > 0
  }
}
