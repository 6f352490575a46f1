/**
 * The agent-runtime API of an SDK handle: lifecycle with a validated transition table, pause /
 * resume, and the task stack/queue. Lifecycle and session writes are local CRDT writes (they
 * sync and version like the state); task claims, completions and failures go through the
 * server, which arbitrates ownership.
 */
import type * as Y from 'yjs'
import { AccordError } from '../model/errors.ts'
import { assertJson, type JsonValue } from '../model/json.ts'
import { setAt } from '../model/json-yjs.ts'
import {
  DEFAULT_TRANSITIONS, isPaused, newTaskRecord, writePause, writeResume, readAgent, readRuntime, readTask, runtimeMap, softResetRecord, transitionRecord,
  type AgentRecord, type AgentStatus, type RuntimeState, type SessionRecord, type TaskKind, type TaskRecord, type TransitionTable
} from '../model/runtime.ts'

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

  const writeAgent = (id: string, next: AgentRecord, description: string): AgentRecord => {
    deps.write(() => { setAt(runtimeMap(doc, 'agents'), id, next as unknown as JsonValue) }, description)
    return next
  }

  const lifecycle: Lifecycle = {
    get: (id = agentId) => readAgent(doc, id),
    all: () => readRuntime(doc).agents,
    transition (to, options = {}) {
      const id = options.agentId ?? agentId
      if (options.metadata !== undefined) assertJson(options.metadata)
      const current = readAgent(doc, id)
      const next = transitionRecord(id, current, to, options.metadata, transitions)
      return writeAgent(id, next, `${id}: ${current?.status ?? 'idle'} -> ${to}`)
    },
    softReset: (id = agentId) => writeAgent(id, softResetRecord(readAgent(doc, id)), `${id}: soft reset to idle`)
  }

  const tasks: Tasks = {
    push (payload, options = {}) {
      assertJson(payload)
      const task = newTaskRecord(agentId, payload, options)
      deps.write(() => { setAt(runtimeMap(doc, 'tasks'), task.id, task as unknown as JsonValue) }, `${agentId} pushed task ${task.id}`)
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
      deps.write(() => { writePause(doc, agentId, reason, metadata) }, `${agentId} paused: ${reason}`)
    },
    resume (additionalContext) {
      if (additionalContext !== undefined) assertJson(additionalContext)
      if (!isPaused(doc)) throw new AccordError('INVALID_REQUEST', 'the workflow is not paused')
      deps.write(() => { writeResume(doc, agentId, additionalContext) }, `${agentId} resumed`, true)
    }
  }
}

export { DEFAULT_TRANSITIONS }
