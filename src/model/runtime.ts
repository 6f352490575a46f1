/**
 * The agent runtime lives in the workflow document itself, so it syncs, persists and versions
 * like the state, but in root maps of its own (outside the user's JSON). Each collection is a
 * separate root because roots never conflict, while two clients creating the same nested map
 * concurrently would lose one of them.
 *
 *   accord:lifecycle  <agentId> -> AgentRecord   status, metadata, transition history
 *   accord:session    fields of SessionRecord     pause / resume (context in accord:context)
 *   accord:context    <key> -> value              context merged by resume()
 *   accord:tasks      <taskId> -> TaskRecord      LIFO stack / FIFO queue entries
 *   accord:events     RuntimeEvent[]              timeouts and lease expiries noticed by the server
 */
import * as Y from 'yjs'
import { AccordError } from './errors.ts'
import { setAt, setMapContents, yToJson } from './json-yjs.ts'
import type { JsonObject, JsonValue } from './json.ts'
import type { AgentRecord, AgentStatus, RuntimeEvent, SessionRecord, TaskKind, TaskRecord } from './runtime-schema.ts'

// The records' schemas live in a module of their own, so that a bundle that never validates
// them (the browser SDK's openWorkflow) leaves zod out; they are still exported from here.
export * from './runtime-schema.ts'

export const RUNTIME_ROOTS = {
  agents: 'accord:lifecycle',
  session: 'accord:session',
  context: 'accord:context',
  tasks: 'accord:tasks'
} as const
export const EVENTS_ROOT = 'accord:events'

export type RuntimeSection = keyof typeof RUNTIME_ROOTS
export const runtimeMap = (doc: Y.Doc, section: RuntimeSection): Y.Map<unknown> => doc.getMap(RUNTIME_ROOTS[section])
export const eventsArray = (doc: Y.Doc): Y.Array<unknown> => doc.getArray(EVENTS_ROOT)

/** Allowed transitions: from -> the statuses it may move to. */
export type TransitionTable = Record<AgentStatus, readonly AgentStatus[]>

export const DEFAULT_TRANSITIONS: TransitionTable = {
  idle: ['processing', 'notifying', 'archiving', 'error'],
  processing: ['idle', 'notifying', 'error', 'archiving'],
  resuming: ['processing', 'idle', 'error'],
  error: ['resuming', 'idle', 'archiving'],
  archiving: ['idle', 'error'],
  notifying: ['idle', 'processing', 'error']
}

/** Default per-status timeouts (ms) the server enforces; statuses without one never time out. */
export const DEFAULT_TIMEOUTS: Partial<Record<AgentStatus, number>> = {
  idle: 300_000,
  processing: 1_800_000,
  error: 60_000
}


export interface RuntimeState {
  agents: Record<string, AgentRecord>
  session: SessionRecord
  tasks: Record<string, TaskRecord>
  events: RuntimeEvent[]
}

export const EMPTY_SESSION: SessionRecord = { paused: false, context: {} }
/** Kept per agent / in the event log; older entries are dropped. */
export const MAX_HISTORY = 100
export const MAX_EVENTS = 200

/** Cheap check of the session flag (no JSON conversion). */
export const isPaused = (doc: Y.Doc): boolean => runtimeMap(doc, 'session').get('paused') === true

/** One task as JSON, or undefined. */
export const readTask = (doc: Y.Doc, taskId: string): TaskRecord | undefined => {
  const value = runtimeMap(doc, 'tasks').get(taskId)
  return value === undefined ? undefined : yToJson(value) as unknown as TaskRecord
}

/** Reads one field of each entry of a runtime map without converting whole records. */
const field = (entry: unknown, key: string): unknown => entry instanceof Y.Map ? entry.get(key) : (entry as Record<string, unknown> | null)?.[key]

export const readRuntime = (doc: Y.Doc): RuntimeState => {
  const session = yToJson(runtimeMap(doc, 'session')) as Partial<SessionRecord>
  return {
    agents: yToJson(runtimeMap(doc, 'agents')) as Record<string, AgentRecord>,
    session: { ...EMPTY_SESSION, ...session, context: yToJson(runtimeMap(doc, 'context')) as Record<string, unknown> },
    tasks: yToJson(runtimeMap(doc, 'tasks')) as Record<string, TaskRecord>,
    events: yToJson(eventsArray(doc)) as RuntimeEvent[]
  }
}

export class InvalidTransitionError extends AccordError {
  constructor (agentId: string, from: AgentStatus, to: AgentStatus) {
    super('INVALID_TRANSITION', `agent ${agentId} may not go from ${from} to ${to}`, { agentId, from, to })
    this.name = 'InvalidTransitionError'
  }
}

export class PausedError extends AccordError {
  constructor (workflowId: string, reason: string | undefined) {
    super('PAUSED', `workflow ${workflowId} is paused${reason === undefined ? '' : `: ${reason}`}; only resume() may write`, { reason })
    this.name = 'PausedError'
  }
}

/** The earliest moment the server must look at this runtime again (timeouts, leases), or null. */
export const nextDeadline = (doc: Y.Doc, timeouts: Partial<Record<AgentStatus, number>>): number | null => {
  let deadline = Number.POSITIVE_INFINITY
  for (const agent of runtimeMap(doc, 'agents').values()) {
    const limit = timeouts[field(agent, 'status') as AgentStatus]
    if (limit !== undefined && field(agent, 'timedOut') === undefined) deadline = Math.min(deadline, (field(agent, 'since') as number) + limit)
  }
  for (const task of runtimeMap(doc, 'tasks').values()) {
    const claimedAt = field(task, 'claimedAt')
    const leaseMs = field(task, 'leaseMs')
    if (field(task, 'status') === 'claimed' && typeof claimedAt === 'number' && typeof leaseMs === 'number') {
      deadline = Math.min(deadline, claimedAt + leaseMs)
    }
  }
  return deadline === Number.POSITIVE_INFINITY ? null : deadline
}

/** The next pending task of `kind` (LIFO: highest seq, FIFO: lowest), reading only order fields. */
export const nextPendingTask = (doc: Y.Doc, kind: TaskKind): string | null => {
  let best: string | null = null
  let bestSeq = 0
  for (const [id, task] of runtimeMap(doc, 'tasks').entries()) {
    if (field(task, 'status') !== 'pending' || field(task, 'kind') !== kind) continue
    const seq = field(task, 'seq') as number
    if (best === null || (kind === 'stack' ? seq > bestSeq : seq < bestSeq)) {
      best = id
      bestSeq = seq
    }
  }
  return best
}

/** The record after moving `current` to `to`; throws InvalidTransitionError when the table forbids it. */
export const transitionRecord = (
  agentId: string, current: AgentRecord | undefined, to: AgentStatus,
  metadata: Record<string, unknown> | undefined, table: TransitionTable, now = Date.now()
): AgentRecord => {
  const from: AgentStatus = current?.status ?? 'idle'
  // A new agent starts in idle; declaring that needs no transition.
  if ((current !== undefined || to !== 'idle') && !(table[from] ?? []).includes(to)) throw new InvalidTransitionError(agentId, from, to)
  const step = { from, to, at: now, ...(metadata === undefined ? {} : { metadata }) }
  return { status: to, since: now, metadata: metadata ?? {}, history: [...(current?.history ?? []), step].slice(-MAX_HISTORY) }
}

/** Back to idle whatever the table says, keeping the history. */
export const softResetRecord = (current: AgentRecord | undefined, now = Date.now()): AgentRecord => {
  const step = { from: current?.status ?? 'idle', to: 'idle' as const, at: now, reset: true }
  return { status: 'idle', since: now, metadata: {}, history: [...(current?.history ?? []), step].slice(-MAX_HISTORY) }
}

export const readAgent = (doc: Y.Doc, agentId: string): AgentRecord | undefined => {
  const value = runtimeMap(doc, 'agents').get(agentId)
  return value === undefined ? undefined : yToJson(value) as unknown as AgentRecord
}

let taskCounter = 0

export const newTaskRecord = (
  createdBy: string, payload: unknown, options: { kind?: TaskKind, maxRetries?: number, id?: string } = {}, now = Date.now()
): TaskRecord => ({
  id: options.id ?? `task-${now.toString(36)}-${Math.random().toString(36).slice(2, 10)}`,
  kind: options.kind ?? 'stack',
  // Milliseconds plus a counter: pushes within one millisecond keep their order.
  seq: now + (taskCounter++ % 1000) / 1000,
  payload,
  status: 'pending',
  createdAt: now,
  createdBy,
  claimedBy: null,
  claimedAt: null,
  leaseMs: null,
  attempts: 0,
  maxRetries: options.maxRetries ?? 3
})

/** Writes a pause (call inside a transaction). */
export const writePause = (doc: Y.Doc, agentId: string, reason: string, metadata: Record<string, unknown> | undefined): void => {
  setMapContents(runtimeMap(doc, 'session'), { paused: true, reason, metadata: (metadata ?? {}) as JsonObject, pausedAt: Date.now(), pausedBy: agentId })
}

/** Writes a resume and merges `context` (call inside a transaction). */
export const writeResume = (doc: Y.Doc, agentId: string, context: Record<string, unknown> | undefined): void => {
  const map = runtimeMap(doc, 'session')
  map.set('paused', false)
  map.set('resumedAt', Date.now())
  map.set('resumedBy', agentId)
  const target = runtimeMap(doc, 'context')
  for (const [k, v] of Object.entries(context ?? {})) if (v !== undefined) setAt(target, k, v as JsonValue)
}
