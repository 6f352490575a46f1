/**
 * The SDK handle: a workflow's state as plain JSON over a Yjs document synced with the server by
 * a stock y-websocket provider, plus the history API over Accord's protocol extension.
 * Why one file of ~430 lines: it is one closure (the handle) whose parts share the provider, the
 * doc and the status; history and runtime calls already live in history-api.ts and runtime-api.ts.
 */
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import type { z } from 'zod'
import type { Operation } from 'fast-json-patch'
import { AccordError, ClosedError, SchemaViolationError, TimeoutError, type SchemaIssue } from '../model/errors.ts'
import { assertJson, deepEqual, deepFreeze, isPlainObject, type JsonObject } from '../model/json.ts'
import { setMapContents, stateRoot } from '../model/json-yjs.ts'
import { createSnapshot } from './snapshot.ts'
import { applyPatchToJson, applyPatchToYjs } from '../model/patch.ts'
import { eventsToOps } from '../model/changes.ts'
import { assertWorkflowId } from '../model/workflow-id.ts'
import { AGENTS_ROOT } from '../model/agents.ts'
import { AGENT_PARAM, EXTENSION_PARAM } from '../model/protocol.ts'
import { attachExtension, type RemoteOrigin } from './extension.ts'
import { dropExitListener } from './exit-hook.ts'
import { schemaView, shareUnchanged } from './schema-view.ts'
import { createHistoryApi, type HistoryApi } from './history-api.ts'
import type { ChangeMeta, VersionRecord, ViolationRecord } from '../model/schema.ts'
import { createRuntimeApi, type RuntimeApi } from './runtime-api.ts'
import { attachRecovery, type RecoveryEvent, type RecoveryOptions } from './recovery.ts'
import type { Platform } from './platform.ts'
import { autoCheckpoint, withCheckpoint, type AutoCheckpoint, type AutoCheckpointOptions, type WithCheckpointOptions } from './checkpoints.ts'
import { DEFAULT_TRANSITIONS, PausedError, isPaused, readRuntime, type TransitionTable } from '../model/runtime.ts'

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
export type RecordListener = (record: VersionRecord) => void

export interface UpdateOptions {
  /** Why: recorded in the version this change becomes. */
  description?: string
  /** Tracing context recorded with the version. */
  meta?: ChangeMeta
}

/** Stops a subscription; `ready` resolves once the server has registered it. */
export interface Subscription {
  (): void
  ready: Promise<void>
}

export interface RecordSubscription {
  /** Only changes at, above or below this JSON pointer. */
  path?: string
  /** Replay every record after this version first (e.g. the last one you saw). */
  after?: number
}

export interface OpenWorkflowOptions<S extends z.ZodType | undefined = undefined> {
  /** Server address, e.g. ws://127.0.0.1:1234 */
  url: string
  /** Who this agent is; recorded as the author of its changes (default `anonymous-<Yjs client id>`). */
  agentId?: string
  /** Optional zod schema: local changes that would violate it are refused. */
  schema?: S
  /** WebSocket implementation; defaults to `ws` in Node and the global one in browsers. */
  WebSocket?: typeof globalThis.WebSocket
  /** Extra URL query parameters sent with the connection. */
  params?: Record<string, string>
  /** A signed token (servers with auth); sent as the `token` query parameter, which browsers allow. */
  token?: string
  /** Upper bound for the reconnect backoff of the provider, in ms (default 2500). */
  maxBackoffTime?: number
  /** Agent lifecycle: the allowed transitions (default DEFAULT_TRANSITIONS). */
  lifecycle?: { transitions?: TransitionTable }
  /** Reconnect policy: exponential backoff with jitter (base 100 ms, cap 10 s, unlimited attempts). */
  recovery?: RecoveryOptions
  /**
   * Keep the document locally so the agent can start and edit offline: a LevelDB directory in
   * Node (one process per directory), an IndexedDB database name in browsers.
   */
  persistence?: string
}

export type StateOf<S> = S extends z.ZodType ? z.output<S> : JsonObject

interface LocalOrigin {
  agentId: string
  description?: string
}

export interface WorkflowHandle<T = JsonObject> extends HistoryApi, RuntimeApi {
  readonly id: string
  readonly agentId: string
  /** The underlying Yjs document, for experts. Edits made on it directly bypass the schema. */
  readonly doc: Y.Doc
  readonly provider: WebsocketProvider
  /** Current state as frozen plain JSON. */
  readonly state: T
  readonly synced: boolean
  /** Mutate a draft (or return a new value); applied as the minimal Yjs change. */
  update: (fn: (draft: T) => T | void, options?: UpdateOptions) => T
  /** Apply RFC 6902 ops. */
  patch: (ops: Operation[], options?: UpdateOptions) => T
  /** Called once per transaction (local or remote) that changed the state. */
  subscribe: {
    (listener: ChangeListener): () => void
    /** Persisted change records (versions) from the server, in order, exactly once, across reconnects. */
    (options: RecordSubscription, listener: RecordListener): Subscription
  }
  /** Resolves once the first sync with the server completed. */
  whenSynced: (options?: { timeoutMs?: number }) => Promise<void>
  /** Resolves once the locally persisted state is loaded (at once without `persistence`). */
  whenLoaded: () => Promise<void>
  /** Resolves once every change so far is in local persistence (at once without it). */
  whenPersisted: () => Promise<void>
  /** Writes the server refused or reverted: schema violations, writes while paused. */
  violations: () => Promise<ViolationRecord[]>
  /** Connection recovery events: reconnecting, recovered, gave-up. */
  onRecovery: (listener: (event: RecoveryEvent) => void) => () => void
  /** pre_operation snapshot, run fn, restore the snapshot if fn throws (and rethrow), delete it after. */
  withCheckpoint: <R>(fn: () => R | Promise<R>, options?: WithCheckpointOptions) => Promise<R>
  /** Routine snapshots every intervalMs (newest `keep` kept), and on task completion / error status when asked. */
  autoCheckpoint: (options: AutoCheckpointOptions) => AutoCheckpoint
  close: () => Promise<void>
}

const toIssues = (error: z.ZodError): SchemaIssue[] =>
  error.issues.map(i => ({ path: i.path.map(p => (typeof p === 'symbol' ? String(p) : p)), message: i.message, code: i.code }))

/**
 * Builds `openWorkflow` for one platform (its WebSocket and local persistence), so the SDK's
 * entries pick theirs by package.json conditions instead of importing every platform's code.
 */
export const createOpenWorkflow = (platform: Platform) => <S extends z.ZodType | undefined = undefined>(
  id: string,
  options: OpenWorkflowOptions<S>
): WorkflowHandle<StateOf<S>> => {
  type T = StateOf<S>
  assertWorkflowId(id)
  const { schema } = options
  const doc = new Y.Doc()
  // Never the author "undefined": an agent that names no id still gets a distinct, stable one.
  const agentId = options.agentId ?? `anonymous-${doc.clientID}`
  const root = stateRoot(doc)
  const agents = doc.getMap<string>(AGENTS_ROOT)
  const provider = new WebsocketProvider(options.url.replace(/\/+$/, ''), id, doc, {
    WebSocketPolyfill: options.WebSocket ?? platform.WebSocket,
    params: { ...options.params, [EXTENSION_PARAM]: '1', [AGENT_PARAM]: agentId, ...(options.token === undefined ? {} : { token: options.token }) },
    maxBackoffTime: options.maxBackoffTime,
    // Same-origin BroadcastChannel sync would let agents see edits the server has not stored.
    disableBc: true,
    // With local persistence, load first: the first sync then only exchanges what differs.
    connect: options.persistence === undefined
  })
  dropExitListener(provider)
  const local = options.persistence === undefined ? null : platform.attachPersistence(doc, id, options.persistence, agentId)
  provider.awareness.setLocalStateField('agent', { id: agentId })

  // Structural sharing: unchanged subtrees keep their identity from one state to the next.
  const snapshot = createSnapshot(root)
  let closed = false
  let terminal: AccordError | null = null
  const listeners = new Set<ChangeListener>()

  // Record subscriptions survive reconnects: each (re)connect subscribes again after the last
  // version seen, and the server replays what was missed; duplicates are dropped by version.
  interface RecordSub { options: RecordSubscription, listener: RecordListener, last: number | undefined, serverId: number | null, registered: () => void }
  const recordSubs = new Set<RecordSub>()
  const byServerId = new Map<number, RecordSub>()
  const startSub = (sub: RecordSub): void => {
    ext.request<{ subscription: number, after: number }>('subscribe', { path: sub.options.path, after: sub.last })
      .then(({ subscription, after }) => {
        if (!recordSubs.has(sub)) {
          void ext.request('unsubscribe', { subscription }).catch(() => {})
          return
        }
        sub.serverId = subscription
        byServerId.set(subscription, sub)
        if (sub.last === undefined) sub.last = after
        const early = unclaimed.get(subscription) ?? []
        unclaimed.delete(subscription)
        for (const record of early) deliver(sub, record)
        sub.registered()
      }, () => { /* retried on the next connect */ })
  }
  // Replayed records can arrive before the reply that names their subscription: hold them.
  const unclaimed = new Map<number, VersionRecord[]>()
  const deliver = (sub: RecordSub, record: VersionRecord): void => {
    if (sub.last !== undefined && record.version <= sub.last) return
    sub.last = record.version
    sub.listener(record)
  }
  const ext = attachExtension(provider, (subscription, body) => {
    const sub = byServerId.get(subscription)
    if (sub !== undefined) {
      deliver(sub, body as VersionRecord)
      return
    }
    const held = unclaimed.get(subscription) ?? []
    if (held.length < 100_000) held.push(body as VersionRecord)
    unclaimed.set(subscription, held)
  }, () => {
    byServerId.clear()
    unclaimed.clear()
    for (const sub of recordSubs) startSub(sub)
  }, origin => { remoteOrigin = origin })
  // The server names the author of each update it relays just before relaying it.
  let remoteOrigin: RemoteOrigin | null = null
  doc.on('afterTransaction', (tr: Y.Transaction) => { if (!tr.local) remoteOrigin = null })

  // The snapshot shares unchanged subtrees between versions; with a schema, its view (defaults
  // applied) is rebuilt only when the snapshot changed, so an unchanged state stays ===.
  let view: { raw: unknown, state: T } | null = null
  const current = (): T => {
    const raw = snapshot.read()
    if (schema === undefined) return raw as T
    if (view === null || view.raw !== raw) view = { raw, state: deepFreeze(shareUnchanged(view?.state, schemaView(schema, raw as JsonObject))) as T }
    return view.state
  }

  const authorOf = (tr: Y.Transaction): string => {
    const names = new Set<string>()
    for (const [client, clock] of tr.afterState) {
      if ((tr.beforeState.get(client) ?? 0) < clock) names.add(agents.get(String(client)) ?? `client:${client}`)
    }
    return names.size === 0 ? 'unknown' : Array.from(names).join(',')
  }

  root.observeDeep((events, tr) => {
    snapshot.apply(events)
    if (listeners.size === 0) return
    const origin = tr.origin as LocalOrigin | null
    const local = tr.local
    const change: ChangeEvent = {
      ops: eventsToOps(events),
      author: local ? (origin?.agentId ?? agentId) : (remoteOrigin?.author ?? authorOf(tr)),
      local,
      description: local ? origin?.description : remoteOrigin?.description
    }
    for (const listener of listeners) listener(change)
  })

  const recoveryListeners = new Set<(event: RecoveryEvent) => void>()
  const recovery = attachRecovery(provider, options.recovery ?? {}, event => {
    for (const listener of recoveryListeners) listener(event)
  })
  if (local !== null) {
    local.whenLoaded.then(
      () => { if (!closed) provider.connect() },
      (err: Error) => { terminal = new AccordError('STORAGE_FAILURE', `loading local state of ${id} failed: ${err.message}`, undefined, { cause: err }) }
    )
  }

  // Fires only for final closes: 44xx from the server, or recovery giving up.
  provider.on('closed', (event: { code: number, reason: string }) => {
    terminal = recovery.gaveUp
      ? new AccordError('WORKFLOW_UNAVAILABLE', `gave up reconnecting to workflow ${id} after ${recovery.attempts} attempts`, { code: event.code, reason: event.reason, attempts: recovery.attempts })
      : new AccordError('WORKFLOW_UNAVAILABLE', `server closed workflow ${id}: ${event.code} ${event.reason}`, { code: event.code, reason: event.reason })
  })

  /** One local transaction: describe it to the server, apply it, record who we are. */
  const transact = (fn: () => void, opts: UpdateOptions | undefined, allowPaused = false): void => {
    if (closed) throw new ClosedError(`workflow ${id}`)
    if (!allowPaused && isPaused(doc)) throw new PausedError(id, readRuntime(doc).session.reason)
    // Travels just ahead of the update on the same socket; the server attaches it to the update.
    ext.describe(opts?.description, opts?.meta)
    doc.transact(() => {
      fn()
      // Once per client id: rewriting it on every change would leave a tombstone per change.
      if (agents.get(String(doc.clientID)) !== agentId) agents.set(String(doc.clientID), agentId)
    }, { agentId, description: opts?.description } satisfies LocalOrigin)
  }

  const commit = (next: unknown, opts: UpdateOptions | undefined, write: () => void): T => {
    if (closed) throw new ClosedError(`workflow ${id}`)
    if (isPaused(doc)) throw new PausedError(id, readRuntime(doc).session.reason)
    assertJson(next)
    if (!isPlainObject(next)) throw new AccordError('INVALID_JSON', 'a workflow state must be a JSON object')
    if (schema !== undefined) {
      const result = schema.safeParse(next)
      if (!result.success) throw new SchemaViolationError(toIssues(result.error))
    }
    if (deepEqual(next, current())) return current()
    transact(write, opts)
    // Inside another transaction's observers (an update made from a subscribe callback), Yjs runs
    // this transaction's observers only after the current ones: the snapshot would miss it until
    // then, and the next update() would build its draft from that stale state and write it back,
    // undoing this change. The document has the change already: read it from there.
    if (doc._transactionCleanups.length > 0) snapshot.invalidate()
    return current()
  }

  function subscribe (listener: ChangeListener): () => void
  function subscribe (options: RecordSubscription, listener: RecordListener): Subscription
  function subscribe (a: ChangeListener | RecordSubscription, b?: RecordListener): (() => void) | Subscription {
    if (typeof a === 'function') {
      listeners.add(a)
      return () => { listeners.delete(a) }
    }
    let registered = (): void => {}
    const ready = new Promise<void>(resolve => { registered = resolve })
    const sub: RecordSub = { options: a, listener: b as RecordListener, last: a.after, serverId: null, registered }
    recordSubs.add(sub)
    startSub(sub)
    const stop = (): void => {
      recordSubs.delete(sub)
      if (sub.serverId !== null) {
        byServerId.delete(sub.serverId)
        void ext.request('unsubscribe', { subscription: sub.serverId }).catch(() => {})
      }
    }
    return Object.assign(stop, { ready })
  }

  const runtimeApi = createRuntimeApi({
    doc,
    agentId,
    transitions: options.lifecycle?.transitions ?? DEFAULT_TRANSITIONS,
    write: (fn, description, allowPaused) => { transact(fn, { description }, allowPaused) },
    request: ext.request
  })

  const historyApi = createHistoryApi(ext.request)
  // Auto-checkpoint policies that also fire on this agent's task completions and error status.
  const autos = new Set<AutoCheckpoint>()
  const fire = (reason: 'completion' | 'error'): void => {
    for (const auto of autos) {
      if (reason === 'completion' ? auto.onCompletion : auto.onError) void auto.checkpoint(reason).catch(() => {})
    }
  }
  const tasks = {
    ...runtimeApi.tasks,
    complete: async (taskId: string, result?: Parameters<RuntimeApi['tasks']['complete']>[1]) => {
      const done = await runtimeApi.tasks.complete(taskId, result)
      fire('completion')
      return done
    }
  }
  const lifecycle = {
    ...runtimeApi.lifecycle,
    transition: (...args: Parameters<RuntimeApi['lifecycle']['transition']>) => {
      const record = runtimeApi.lifecycle.transition(...args)
      if (record.status === 'error' && (args[1]?.agentId ?? agentId) === agentId) fire('error')
      return record
    }
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
      return commit(next, opts, () => { setMapContents(root, next) })
    },
    patch (ops, opts) {
      const next = applyPatchToJson(current() as JsonObject, ops)
      // Ops may address defaults the document does not hold yet: write the whole result then.
      const defaultsOnly = schema !== undefined && !deepEqual(snapshot.read(), current())
      return commit(next, opts, () => { if (defaultsOnly) setMapContents(root, next); else applyPatchToYjs(root, ops) })
    },
    subscribe,
    ...historyApi,
    pause: runtimeApi.pause,
    resume: runtimeApi.resume,
    tasks,
    lifecycle,
    get runtime () { return runtimeApi.runtime },
    get session () { return runtimeApi.session },
    violations: () => ext.request('violations'),
    whenLoaded: async () => { await local?.whenLoaded },
    whenPersisted: async () => { await local?.whenPersisted() },
    onRecovery (listener) {
      recoveryListeners.add(listener)
      return () => { recoveryListeners.delete(listener) }
    },
    withCheckpoint: (fn, opts) => withCheckpoint(historyApi, fn, opts),
    autoCheckpoint (opts) {
      const auto = autoCheckpoint(historyApi, opts)
      autos.add(auto)
      const stop = auto.stop
      return Object.assign(auto, { stop: () => { autos.delete(auto); stop() } })
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
        const timer = setTimeout(() => { done(new TimeoutError(`sync of workflow ${id}`, timeoutMs)) }, timeoutMs)
        provider.on('sync', onSync)
        provider.on('closed', onClosed)
      })
    },
    async close () {
      if (closed) return
      closed = true
      listeners.clear()
      recordSubs.clear()
      recoveryListeners.clear()
      for (const auto of autos) auto.stop()
      recovery.destroy()
      ext.destroy()
      provider.destroy()
      await local?.destroy()
      doc.destroy()
    }
  }
  return handle
}
