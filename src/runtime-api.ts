/**
 * The agent-runtime API of an SDK handle: lifecycle with a validated transition table, pause /
 * resume, and the task stack/queue. Lifecycle and session writes are local CRDT writes (they
 * sync and version like the state); task claims, completions and failures go through the
 * server, which arbitrates ownership.
 */
import type * as Y from 'yjs'
import { AccordError } from './errors.ts'
import { assertJson, type JsonValue } from './json.ts'
import { setAt, setMapContents, yToJson } from './json-yjs.ts'
import {
  DEFAULT_TRANSITIONS, InvalidTransitionError, MAX_HISTORY, readRuntime, readTask, runtimeMap,
  type AgentRecord, type AgentStatus, type RuntimeState, type SessionRecord, type TaskKind, type TaskRecord, type TransitionTable
} from './runtime.ts'

type Request = <T>(method: string, params?: Record<string, unknown>) => Promise<T>

export interface RuntimeDeps {
  doc: Y.Doc
  agentId: string
  transitions: TransitionTable
  /** Applies `fn` as one local transaction; refuses while paused unless `allowPaused`. */
  write: (fn: () => void, description: string, allowPaused?: boolean) => void
  request: Request
}

export interface Lifecycle {
  /** An agent's record (default: this agent); undefined before its first transition. */
  get: (agentId?: string) => AgentRecord | undefined
  all: () => Record<string, AgentRecord>
  /** Moves this agent (or `agentId`) to `to`; throws InvalidTransitionError, writing nothing, when the table forbids it. */
  transition: (to: AgentStatus, options?: { metadata?: Record<string, unknown>, agentId?: string }) => AgentRecord
  /** Back to idle whatever the table says, keeping the history. */
  softReset: (agentId?: string) => AgentRecord
}

export interface Tasks {
  /** Adds a task (a local write: works offline). */
  push: (payload: JsonValue, options?: { kind?: TaskKind, maxRetries?: number, id?: string }) => TaskRecord
  /** Asks the server for the next task: LIFO for 'stack' (default), FIFO for 'queue'; null when none. */
  claim: (options?: { kind?: TaskKind, leaseMs?: number }) => Promise<TaskRecord | null>
  complete: (taskId: string, result?: JsonValue) => Promise<TaskRecord>
  /** Ends the claim: pending again while attempts <= maxRetries, else failed. */
  fail: (taskId: string, error: string) => Promise<TaskRecord>
  get: (taskId: string) => TaskRecord | undefined
  list: (filter?: { status?: TaskRecord['status'], kind?: TaskKind }) => TaskRecord[]
}

export interface RuntimeApi {
  lifecycle: Lifecycle
  tasks: Tasks
  readonly runtime: RuntimeState
  readonly session: SessionRecord
  /** Marks the workflow paused: SDK writes other than resume() are refused until then. */
  pause: (reason: string, metadata?: Record<string, unknown>) => void
  /** Continues, merging `additionalContext` into the session context. */
  resume: (additionalContext?: Record<string, unknown>) => void
}

export const createRuntimeApi = (deps: RuntimeDeps): RuntimeApi => {
  const { doc, agentId, transitions } = deps
  let seq = 0

  const record = (id: string): AgentRecord | undefined => {
    const value = runtimeMap(doc, 'agents').get(id)
    return value === undefined ? undefined : yToJson(value) as unknown as AgentRecord
  }

  const writeAgent = (id: string, next: AgentRecord, description: string): AgentRecord => {
    deps.write(() => { setAt(runtimeMap(doc, 'agents'), id, next as unknown as JsonValue) }, description)
    return next
  }

  const lifecycle: Lifecycle = {
    get: (id = agentId) => record(id),
    all: () => readRuntime(doc).agents,
    transition (to, options = {}) {
      const id = options.agentId ?? agentId
      const current = record(id)
      const from: AgentStatus = current?.status ?? 'idle'
      if (current !== undefined || to !== 'idle') {
        if (!(transitions[from] ?? []).includes(to)) throw new InvalidTransitionError(id, from, to)
      }
      if (options.metadata !== undefined) assertJson(options.metadata)
      const at = Date.now()
      const history = [...(current?.history ?? []), { from, to, at, ...(options.metadata === undefined ? {} : { metadata: options.metadata }) }]
      return writeAgent(id, {
        status: to,
        since: at,
        metadata: options.metadata ?? {},
        history: history.slice(-MAX_HISTORY)
      }, `${id}: ${from} -> ${to}`)
    },
    softReset (id = agentId) {
      const current = record(id)
      const at = Date.now()
      const history = [...(current?.history ?? []), { from: current?.status ?? 'idle', to: 'idle' as const, at, reset: true }]
      return writeAgent(id, { status: 'idle', since: at, metadata: {}, history: history.slice(-MAX_HISTORY) }, `${id}: soft reset to idle`)
    }
  }

  const tasks: Tasks = {
    push (payload, options = {}) {
      assertJson(payload)
      const id = options.id ?? `task-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`
      const task: TaskRecord = {
        id,
        kind: options.kind ?? 'stack',
        // Milliseconds plus a per-handle counter: pushes of one agent keep their order.
        seq: Date.now() + (seq++ % 1000) / 1000,
        payload,
        status: 'pending',
        createdAt: Date.now(),
        createdBy: agentId,
        claimedBy: null,
        claimedAt: null,
        leaseMs: null,
        attempts: 0,
        maxRetries: options.maxRetries ?? 3
      }
      deps.write(() => { setAt(runtimeMap(doc, 'tasks'), id, task as unknown as JsonValue) }, `${agentId} pushed task ${id}`)
      return task
    },
    claim: (options = {}) => deps.request('claimTask', options),
    complete: (taskId, result) => deps.request('completeTask', { taskId, result }),
    fail: (taskId, error) => deps.request('failTask', { taskId, error }),
    get: taskId => readTask(doc, taskId),
    list: (filter = {}) => Object.values(readRuntime(doc).tasks)
      .filter(t => (filter.status === undefined || t.status === filter.status) && (filter.kind === undefined || t.kind === filter.kind))
      .sort((a, b) => a.seq - b.seq)
  }

  return {
    lifecycle,
    tasks,
    get runtime () { return readRuntime(doc) },
    get session () { return readRuntime(doc).session },
    pause (reason, metadata) {
      if (metadata !== undefined) assertJson(metadata)
      deps.write(() => {
        setMapContents(runtimeMap(doc, 'session'), {
          paused: true, reason, metadata: metadata ?? {}, pausedAt: Date.now(), pausedBy: agentId
        })
      }, `${agentId} paused: ${reason}`)
    },
    resume (additionalContext) {
      if (additionalContext !== undefined) assertJson(additionalContext)
      const session = readRuntime(doc).session
      if (!session.paused) throw new AccordError('INVALID_REQUEST', 'the workflow is not paused')
      deps.write(() => {
        const map = runtimeMap(doc, 'session')
        map.set('paused', false)
        map.set('resumedAt', Date.now())
        map.set('resumedBy', agentId)
        const context = runtimeMap(doc, 'context')
        for (const [k, v] of Object.entries(additionalContext ?? {})) if (v !== undefined) setAt(context, k, v as JsonValue)
      }, `${agentId} resumed`, true)
    }
  }
}

export { DEFAULT_TRANSITIONS }
