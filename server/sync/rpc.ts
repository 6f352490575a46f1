/**
 * Requests of the Accord protocol extension (message 100), dispatched to the history API.
 * `workflowId` defaults to the workflow of the connection.
 */
import { z } from 'zod'
import { SnapshotKindSchema, WorkflowIdSchema } from '../../src/model/schema.ts'
import { TaskKindSchema } from '../../src/model/runtime.ts'
import { claimTask, completeTask, failTask } from '../runtime/runtime.ts'
import type { Connection } from './connection.ts'
import { ForbiddenError, type Right } from '../http/auth.ts'
import type { Workflow } from './workflow.ts'
import type { ChangeFeed } from './feed.ts'
import * as history from '../history/history.ts'

const Version = z.number().int().nonnegative()
const Target = { workflowId: z.optional(WorkflowIdSchema) }

const methods = {
  history: z.object({ ...Target, limit: z.number().int().positive().optional(), before: Version.optional() }),
  stateAt: z.object({ ...Target, version: Version }),
  diff: z.object({ ...Target, from: Version, to: Version }),
  createSnapshot: z.object({ ...Target, name: z.string().min(1).max(200), kind: z.optional(SnapshotKindSchema), description: z.string().max(2000).optional(), version: Version.optional() }),
  listSnapshots: z.object(Target),
  deleteSnapshot: z.object({ ...Target, snapshotId: z.string() }),
  restore: z.object({ ...Target, version: Version.optional(), snapshotId: z.string().optional() }),
  fork: z.object({ ...Target, version: Version.optional() }),
  promote: z.object({ forkId: WorkflowIdSchema }),
  discard: z.object({ forkId: WorkflowIdSchema }),
  conflicts: z.object(Target),
  subscribe: z.object({ ...Target, path: z.string().optional(), after: Version.optional() }),
  unsubscribe: z.object({ subscription: z.number().int() }),
  violations: z.object(Target),
  claimTask: z.object({ ...Target, kind: z.optional(TaskKindSchema), leaseMs: z.number().int().positive().max(24 * 3600 * 1000).optional() }),
  completeTask: z.object({ ...Target, taskId: z.string(), result: z.unknown().optional() }),
  failTask: z.object({ ...Target, taskId: z.string(), error: z.string().max(2000) })
} as const

export type Method = keyof typeof methods

/** The right each request needs on its workflow. */
const RIGHTS: Record<Method, Right> = {
  history: 'read',
  stateAt: 'read',
  diff: 'read',
  listSnapshots: 'read',
  conflicts: 'read',
  violations: 'read',
  subscribe: 'read',
  unsubscribe: 'read',
  createSnapshot: 'write',
  restore: 'write',
  claimTask: 'write',
  completeTask: 'write',
  failTask: 'write',
  deleteSnapshot: 'admin',
  fork: 'admin',
  promote: 'admin',
  discard: 'admin'
}

/** Runs `fn` on the loaded workflow (loading it if needed) and releases it after. */
const withLoaded = <T>(ctx: history.HistoryContext, id: string, fn: (wf: Workflow) => Promise<T>): Promise<T> => ctx.registry.with(id, fn)

const RequestSchema = z.object({ method: z.string(), params: z.unknown().optional() })

export const handleRequest = async (ctx: history.HistoryContext & { feed: ChangeFeed }, conn: Connection, body: unknown): Promise<unknown> => {
  const request = RequestSchema.safeParse(body)
  if (!request.success) throw new history.InvalidRequestError('a request needs { method, params }')
  const method = request.data.method as Method
  // Own keys only: `constructor` or `__proto__` must not find Object.prototype's members.
  const schema = Object.hasOwn(methods, method) ? methods[method] : undefined
  if (schema === undefined) throw new history.InvalidRequestError(`unknown method ${request.data.method}`)
  const parsed = schema.safeParse(request.data.params ?? {})
  if (!parsed.success) throw new history.InvalidRequestError(`invalid params for ${method}`, { issues: parsed.error.issues })
  const p = parsed.data as Record<string, any>
  const id: string = p.workflowId ?? conn.workflowId
  const by = conn.agentId
  const target: string = p.forkId ?? id
  const right = RIGHTS[method]
  if (!conn.principal.can(target, right)) throw new ForbiddenError(`${by} may not ${method} on ${target} (needs ${right})`)
  switch (method) {
    case 'history': return history.history(ctx, id, { limit: p.limit, before: p.before })
    case 'stateAt': return history.stateAt(ctx, id, p.version)
    case 'diff': return history.diff(ctx, id, p.from, p.to)
    case 'createSnapshot': return history.createSnapshot(ctx, id, { ...p as history.CreateSnapshotOptions, by })
    case 'listSnapshots': return history.listSnapshots(ctx, id)
    case 'deleteSnapshot': return history.deleteSnapshot(ctx, id, p.snapshotId)
    case 'restore': return history.restore(ctx, id, { version: p.version, snapshotId: p.snapshotId, by })
    case 'fork': return history.fork(ctx, id, { version: p.version, by })
    case 'promote': return history.promote(ctx, p.forkId, { by })
    case 'discard': return history.discard(ctx, p.forkId)
    case 'conflicts': return history.conflicts(ctx, id)
    case 'subscribe': {
      const subscription = conn.nextSubscription++
      // "From now on" means after the newest durable version, so a reconnect can resume from it.
      const after: number = p.after ?? (await ctx.store.getMeta(id))?.head ?? 0
      const unsubscribe = await ctx.feed.subscribe(id, { path: p.path, after }, record => { conn.sendEvent(subscription, record) })
      if (conn.isClosed) unsubscribe()
      else conn.subscriptions.set(subscription, unsubscribe)
      return { subscription, after }
    }
    case 'violations': return history.violations(ctx, id)
    case 'claimTask':
      return withLoaded(ctx, id, wf => claimTask(wf, by, { kind: p.kind, leaseMs: p.leaseMs }))
    case 'completeTask':
      return withLoaded(ctx, id, wf => completeTask(wf, by, p.taskId, p.result))
    case 'failTask':
      return withLoaded(ctx, id, wf => failTask(wf, by, p.taskId, p.error))
    case 'unsubscribe': {
      conn.subscriptions.get(p.subscription)?.()
      conn.subscriptions.delete(p.subscription)
      return null
    }
  }
}
