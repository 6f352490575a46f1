/**
 * Server side of the agent runtime: task claims arbitrated here (one JS turn picks and writes, so
 * two agents can never own one task), lease expiry, lifecycle timeouts, and the monitor that
 * finds overdue workflows, also ones no longer in memory (their next deadline is kept in meta).
 */
import { AccordError } from '../../src/model/errors.ts'
import type { JsonValue } from '../../src/model/json.ts'
import { setAt } from '../../src/model/json-yjs.ts'
import {
  MAX_EVENTS, eventsArray, nextPendingTask, readRuntime, readTask, runtimeMap, type AgentStatus, type RuntimeEvent, type TaskKind, type TaskRecord
} from '../../src/model/runtime.ts'
import type { Logger } from '../ops/log.ts'
import type { Registry } from '../sync/registry.ts'
import type { Store } from '../../src/store/store.ts'
import type { ChangeOrigin } from '../sync/contracts.ts'
import type { Workflow } from '../sync/workflow.ts'

export class NotTaskOwnerError extends AccordError {
  constructor (taskId: string, agentId: string, owner: string | null) {
    super('NOT_TASK_OWNER', `task ${taskId} is not claimed by ${agentId}${owner === null ? '' : ` (owner: ${owner})`}`, { taskId, agentId, owner })
    this.name = 'NotTaskOwnerError'
  }
}

const SERVER: ChangeOrigin = { agentId: 'accord' }

const writeTask = (wf: Workflow, task: TaskRecord, agentId: string, description: string): void => {
  wf.transact(() => { setAt(runtimeMap(wf.doc, 'tasks'), task.id, task as unknown as JsonValue) }, { agentId }, { description })
}

export interface ClaimOptions {
  kind?: TaskKind
  /** How long the claim holds without complete/fail before the server releases it (default 30 s). */
  leaseMs?: number
}

/** Picks the next pending task (LIFO for stacks, FIFO for queues) and claims it for `agentId`. */
export const claimTask = (wf: Workflow, agentId: string, options: ClaimOptions = {}): Promise<TaskRecord | null> =>
  // Across servers, claims take turns under a cluster lock, each after catching up with the store.
  wf.exclusive('claims', () => claimNow(wf, agentId, options))

const claimNow = async (wf: Workflow, agentId: string, options: ClaimOptions): Promise<TaskRecord | null> => {
  const pickId = nextPendingTask(wf.doc, options.kind ?? 'stack')
  const pick = pickId === null ? undefined : readTask(wf.doc, pickId)
  if (pick === undefined) return null
  const claimed: TaskRecord = { ...pick, status: 'claimed', claimedBy: agentId, claimedAt: Date.now(), leaseMs: options.leaseMs ?? 30_000 }
  writeTask(wf, claimed, agentId, `${agentId} claimed task ${pick.id}`)
  await wf.whenFlushed()
  return claimed
}

const ownedTask = (wf: Workflow, agentId: string, taskId: string): TaskRecord => {
  const task = readTask(wf.doc, taskId)
  if (task === undefined) throw new AccordError('NOT_FOUND', `unknown task ${taskId}`, { taskId })
  if (task.status !== 'claimed' || task.claimedBy !== agentId) throw new NotTaskOwnerError(taskId, agentId, task.claimedBy)
  return task
}

export const completeTask = async (wf: Workflow, agentId: string, taskId: string, result: unknown): Promise<TaskRecord> => {
  const task = ownedTask(wf, agentId, taskId)
  const done: TaskRecord = { ...task, status: 'done', result: result ?? null }
  writeTask(wf, done, agentId, `${agentId} completed task ${taskId}`)
  await wf.whenFlushed()
  return done
}

/** Ends a claim unsuccessfully: back to pending while retries remain, else failed. */
const release = (task: TaskRecord, error: string): TaskRecord => {
  const attempts = task.attempts + 1
  return {
    ...task,
    attempts,
    error,
    status: attempts > task.maxRetries ? 'failed' : 'pending',
    claimedBy: null,
    claimedAt: null,
    leaseMs: null
  }
}

export const failTask = async (wf: Workflow, agentId: string, taskId: string, error: string): Promise<TaskRecord> => {
  const failed = release(ownedTask(wf, agentId, taskId), error)
  writeTask(wf, failed, agentId, `${agentId} failed task ${taskId}`)
  await wf.whenFlushed()
  return failed
}


const appendEvents = (wf: Workflow, events: RuntimeEvent[]): void => {
  const log = eventsArray(wf.doc)
  log.push(events)
  if (log.length > MAX_EVENTS) log.delete(0, log.length - MAX_EVENTS)
}

/** Records timeouts of overdue agents and releases expired claims. Returns what it did. */
export const enforceDeadlines = (wf: Workflow, timeouts: Partial<Record<AgentStatus, number>>, now = Date.now()): RuntimeEvent[] => {
  const runtime = readRuntime(wf.doc)
  const events: RuntimeEvent[] = []
  const agentsMap = runtimeMap(wf.doc, 'agents')
  const tasksMap = runtimeMap(wf.doc, 'tasks')
  const writes: Array<() => void> = []
  for (const [agentId, agent] of Object.entries(runtime.agents)) {
    const limit = timeouts[agent.status]
    if (limit === undefined || agent.timedOut !== undefined || agent.since + limit > now) continue
    events.push({ type: 'timeout', at: now, agentId, status: agent.status, since: agent.since })
    writes.push(() => { setAt(agentsMap, agentId, { ...agent, timedOut: { status: agent.status, at: now } } as unknown as JsonValue) })
  }
  for (const task of Object.values(runtime.tasks)) {
    if (task.status !== 'claimed' || task.claimedAt === null || task.leaseMs === null || task.claimedAt + task.leaseMs > now) continue
    events.push({ type: 'lease-expired', at: now, agentId: task.claimedBy ?? 'unknown', taskId: task.id })
    writes.push(() => { setAt(tasksMap, task.id, release(task, `lease of ${task.claimedBy ?? 'unknown'} expired`) as unknown as JsonValue) })
  }
  if (events.length === 0) return events
  const description = events.map(e => e.type === 'timeout'
    ? `agent ${e.agentId} timed out in ${String(e.status)}`
    : `lease of ${e.agentId} on task ${String(e.taskId)} expired`).join('; ')
  wf.transact(() => {
    for (const write of writes) write()
    appendEvents(wf, events)
  }, SERVER, { description })
  return events
}

export interface MonitorOptions {
  registry: Registry
  store: Store
  log: Logger
  timeouts: Partial<Record<AgentStatus, number>>
  checkIntervalMs: number
}

export interface RuntimeMonitor {
  /** Records a workflow's next deadline (null: none). */
  note: (workflowId: string, deadline: number | null) => void
  /** Loads deadlines of every stored workflow (at startup). */
  start: () => Promise<void>
  /** Enforces every due deadline now. */
  check: (now?: number) => Promise<void>
  close: () => Promise<void>
}

export const createRuntimeMonitor = (opts: MonitorOptions): RuntimeMonitor => {
  const deadlines = new Map<string, number>()
  let timer: ReturnType<typeof setInterval> | null = null
  let running: Promise<void> | null = null
  let closed = false

  const note = (id: string, deadline: number | null): void => {
    if (deadline === null) deadlines.delete(id)
    else deadlines.set(id, deadline)
  }

  const checkOne = (id: string, now: number): Promise<void> => opts.registry.with(id, async wf => {
    const events = enforceDeadlines(wf, opts.timeouts, now)
    for (const e of events) opts.log.info('runtime deadline', { workflowId: id, ...e })
    await wf.whenFlushed()
  })

  const check = async (now = Date.now()): Promise<void> => {
    if (running !== null) return running
    running = (async () => {
      for (const [id, deadline] of Array.from(deadlines)) {
        if (deadline > now || closed) continue
        deadlines.delete(id)
        await checkOne(id, now).catch(err => {
          opts.log.error('enforcing runtime deadlines failed', { workflowId: id, error: (err as Error).message })
          deadlines.set(id, now + opts.checkIntervalMs)
        })
      }
    })().finally(() => { running = null })
    return running
  }

  const start = async (): Promise<void> => {
    for (const meta of await opts.store.listWorkflows()) {
      if (meta.deadline !== undefined && meta.deadline !== null) note(meta.id, meta.deadline)
    }
    timer = setInterval(() => { void check() }, opts.checkIntervalMs)
    timer.unref()
  }

  const close = async (): Promise<void> => {
    closed = true
    if (timer !== null) clearInterval(timer)
    await running
  }

  return { note, start, check, close }
}
