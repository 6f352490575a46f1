/**
 * The SDK handle: a workflow's state as plain JSON over a Yjs document synced with the server by
 * a stock y-websocket provider.
 */
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import type { z } from 'zod'
import type { Operation } from 'fast-json-patch'
import DefaultWebSocket from '#websocket'
import { AccordError, ClosedError, SchemaViolationError, TimeoutError, type SchemaIssue } from './errors.ts'
import { assertJson, deepFreeze, isPlainObject, type JsonObject } from './json.ts'
import { readState, setMapContents, stateRoot } from './json-yjs.ts'
import { applyPatchToJson, applyPatchToYjs } from './patch.ts'
import { eventsToOps } from './changes.ts'
import { assertWorkflowId } from './workflow-id.ts'
import { AGENTS_ROOT } from './agents.ts'


export interface ChangeEvent {
  /** RFC 6902 ops that turn the previous state into the new one. */
  ops: Operation[]
  /** Agent id(s) that wrote the change, comma separated; `client:<id>` for unknown clients. */
  author: string
  /** True when this handle made the change. */
  local: boolean
  description?: string
}

export type ChangeListener = (change: ChangeEvent) => void

export interface UpdateOptions {
  description?: string
}

export interface OpenWorkflowOptions<S extends z.ZodType | undefined = undefined> {
  /** Server address, e.g. ws://127.0.0.1:1234 */
  url: string
  /** Who this agent is; recorded as the author of its changes. */
  agentId: string
  /** Optional zod schema: local changes that would violate it are refused. */
  schema?: S
  /** WebSocket implementation; defaults to `ws` in Node and the global one in browsers. */
  WebSocket?: typeof globalThis.WebSocket
  /** Extra URL query parameters sent with the connection. */
  params?: Record<string, string>
  /** Upper bound for the reconnect backoff of the provider, in ms (default 2500). */
  maxBackoffTime?: number
}

export type StateOf<S> = S extends z.ZodType ? z.output<S> : JsonObject

export type Draft<T> = T

interface LocalOrigin {
  agentId: string
  description?: string
}

export interface WorkflowHandle<T = JsonObject> {
  readonly id: string
  readonly agentId: string
  /** The underlying Yjs document, for experts. Edits made on it directly bypass the schema. */
  readonly doc: Y.Doc
  readonly provider: WebsocketProvider
  /** Current state as frozen plain JSON. */
  readonly state: T
  readonly synced: boolean
  /** Mutate a draft (or return a new value); applied as the minimal Yjs change. */
  update: (fn: (draft: Draft<T>) => T | void, options?: UpdateOptions) => T
  /** Apply RFC 6902 ops. */
  patch: (ops: Operation[], options?: UpdateOptions) => T
  /** Called once per transaction (local or remote) that changed the state. */
  subscribe: (listener: ChangeListener) => () => void
  /** Resolves once the first sync with the server completed. */
  whenSynced: (options?: { timeoutMs?: number }) => Promise<void>
  close: () => Promise<void>
}

const toIssues = (error: z.ZodError): SchemaIssue[] =>
  error.issues.map(i => ({ path: i.path.map(p => (typeof p === 'symbol' ? String(p) : p)), message: i.message, code: i.code }))

export const openWorkflow = <S extends z.ZodType | undefined = undefined>(
  id: string,
  options: OpenWorkflowOptions<S>
): WorkflowHandle<StateOf<S>> => {
  type T = StateOf<S>
  assertWorkflowId(id)
  const { agentId, schema } = options
  const doc = new Y.Doc()
  const root = stateRoot(doc)
  const agents = doc.getMap<string>(AGENTS_ROOT)
  const provider = new WebsocketProvider(options.url.replace(/\/+$/, ''), id, doc, {
    WebSocketPolyfill: options.WebSocket ?? DefaultWebSocket,
    params: options.params,
    maxBackoffTime: options.maxBackoffTime,
    // Same-origin BroadcastChannel sync would let agents see edits the server has not stored.
    disableBc: true
  })
  provider.awareness.setLocalStateField('agent', { id: agentId })

  let cached: T | null = null
  let closed = false
  let terminal: AccordError | null = null
  const listeners = new Set<ChangeListener>()

  const current = (): T => {
    if (cached === null) cached = deepFreeze(readState(doc)) as T
    return cached
  }

  const authorOf = (tr: Y.Transaction): string => {
    const names = new Set<string>()
    for (const [client, clock] of tr.afterState) {
      if ((tr.beforeState.get(client) ?? 0) < clock) names.add(agents.get(String(client)) ?? `client:${client}`)
    }
    return names.size === 0 ? 'unknown' : Array.from(names).join(',')
  }

  root.observeDeep((events, tr) => {
    cached = null
    if (listeners.size === 0) return
    const origin = tr.origin as LocalOrigin | null
    const local = tr.local
    const change: ChangeEvent = {
      ops: eventsToOps(events),
      author: local ? (origin?.agentId ?? agentId) : authorOf(tr),
      local,
      description: local ? origin?.description : undefined
    }
    for (const listener of listeners) listener(change)
  })

  provider.on('closed', (event: { code: number, reason: string }) => {
    terminal = new AccordError('WORKFLOW_UNAVAILABLE',
      `server closed workflow ${id}: ${event.code} ${event.reason}`, { code: event.code, reason: event.reason })
  })

  const commit = (next: unknown, description: string | undefined, write: () => void): T => {
    if (closed) throw new ClosedError(`workflow ${id}`)
    assertJson(next)
    if (!isPlainObject(next)) throw new AccordError('INVALID_JSON', 'a workflow state must be a JSON object')
    if (schema !== undefined) {
      const result = schema.safeParse(next)
      if (!result.success) throw new SchemaViolationError(toIssues(result.error))
    }
    const origin: LocalOrigin = { agentId, description }
    doc.transact(() => {
      write()
      // Written on every local transaction so even delete-only changes carry their author.
      agents.set(String(doc.clientID), agentId)
    }, origin)
    return current()
  }

  const handle: WorkflowHandle<T> = {
    id,
    agentId,
    doc,
    provider,
    get state () { return current() },
    get synced () { return provider.synced },
    update (fn, opts) {
      const draft = structuredClone(current()) as T
      const returned = fn(draft)
      const next = (returned === undefined ? draft : returned) as JsonObject
      return commit(next, opts?.description, () => setMapContents(root, next))
    },
    patch (ops, opts) {
      const next = applyPatchToJson(current() as JsonObject, ops)
      return commit(next, opts?.description, () => applyPatchToYjs(root, ops))
    },
    subscribe (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    whenSynced (opts) {
      if (provider.synced) return Promise.resolve()
      if (terminal !== null) return Promise.reject(terminal)
      if (closed) return Promise.reject(new ClosedError(`workflow ${id}`))
      const timeoutMs = opts?.timeoutMs ?? 30_000
      return new Promise((resolve, reject) => {
        const done = (err?: Error): void => {
          clearTimeout(timer)
          provider.off('sync', onSync)
          provider.off('closed', onClosed)
          if (err === undefined) resolve()
          else reject(err)
        }
        const onSync = (synced: boolean): void => { if (synced) done() }
        const onClosed = (): void => { done(terminal ?? new ClosedError(`workflow ${id}`)) }
        const timer = setTimeout(() => done(new TimeoutError(`sync of workflow ${id}`, timeoutMs)), timeoutMs)
        provider.on('sync', onSync)
        provider.on('closed', onClosed)
      })
    },
    async close () {
      if (closed) return
      closed = true
      listeners.clear()
      provider.destroy()
      doc.destroy()
    }
  }
  return handle
}
