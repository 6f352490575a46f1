/**
 * A closable, ref-counted cache of workflow handles for React: components asking for the same
 * workflow id + server url + agent id share one handle (one connection), which closes when the
 * last of them lets go. Each registry is its own cache (no module-level singleton); an app
 * usually makes one and passes it to `<WorkflowProvider>`.
 *
 *   const registry = createWorkflowRegistry({ url: 'wss://accord.example', agentId: 'viewer' })
 *   const lease = registry.acquire('release-42')     // opens, or shares the open handle
 *   lease.entry.getSnapshot()                        // { workflow, state, status, error }
 *   lease.release()                                  // closes once no lease is left
 *   await registry.close()                           // closes every handle (tests, teardown)
 *
 * Releasing closes after `closeDelayMs` (default 0, a timer): React StrictMode's mount ->
 * unmount -> mount runs synchronously, so the second mount picks the handle up again before it
 * closes and a double mount opens one connection.
 */
import type { z } from 'zod'
import { openWorkflow as browserOpenWorkflow } from '../index.ts'
import { AccordError, type JsonObject, type OpenWorkflowOptions, type WorkflowHandle } from '../sdk.ts'

/** Where a handle is: syncing for the first time, in sync, lost its connection, or failed for good. */
export type WorkflowStatus = 'connecting' | 'synced' | 'reconnecting' | 'error' | 'closed'

export interface WorkflowSnapshot<T = JsonObject> {
  /** The shared handle; null until a component mounted (always null during server rendering). */
  workflow: WorkflowHandle<T> | null
  /** The handle's frozen state (structurally shared between versions); undefined without a handle. */
  state: T | undefined
  status: WorkflowStatus
  /** Why the handle failed (bad options, server closed the workflow, reconnects gave up). */
  error: AccordError | null
}

/** Per-hook options: any `openWorkflow` option, on top of the registry's defaults. */
export type UseWorkflowOptions<S extends z.ZodType | undefined = undefined> = Partial<OpenWorkflowOptions<S>>

export interface WorkflowRegistryOptions extends Partial<Omit<OpenWorkflowOptions, 'schema'>> {
  /** How handles are opened (default: the SDK's browser `openWorkflow`). */
  open?: (id: string, options: OpenWorkflowOptions<any>) => WorkflowHandle<any>
  /** How long a handle nobody uses stays open, in ms (default 0: until the next timer tick). */
  closeDelayMs?: number
}

export interface WorkflowEntry<T = JsonObject> {
  readonly key: string
  /** The same object until something changed (safe for `useSyncExternalStore`). */
  getSnapshot: () => WorkflowSnapshot<T>
  subscribe: (listener: () => void) => () => void
}

export interface WorkflowLease<T = JsonObject> {
  readonly entry: WorkflowEntry<T>
  /** Gives the handle back; idempotent. */
  release: () => void
}

export interface WorkflowRegistry {
  /** The sharing key: handles are shared per workflow id, server url and agent id. */
  keyOf: (id: string, options?: UseWorkflowOptions<any>) => string
  acquire: <S extends z.ZodType | undefined = undefined>(id: string, options?: UseWorkflowOptions<S>) => WorkflowLease<any>
  /** Workflows held: open handles, and failed opens until their last release. */
  readonly size: number
  /** Closes every handle now; later acquires open new ones. */
  close: () => Promise<void>
}

/** What hooks show before a handle exists, and what the server renders. */
export const IDLE_SNAPSHOT: WorkflowSnapshot<any> = Object.freeze({ workflow: null, state: undefined, status: 'connecting', error: null })

interface Entry extends WorkflowEntry<any> {
  refs: number
  timer: ReturnType<typeof setTimeout> | null
  dispose: () => Promise<void>
}

export const createWorkflowRegistry = (defaults: WorkflowRegistryOptions = {}): WorkflowRegistry => {
  const { open = browserOpenWorkflow as NonNullable<WorkflowRegistryOptions['open']>, closeDelayMs = 0, ...base } = defaults
  const entries = new Map<string, Entry>()

  const merged = (options: UseWorkflowOptions<any> | undefined): Partial<OpenWorkflowOptions<any>> => ({ ...base, ...options })
  const keyOf = (id: string, options?: UseWorkflowOptions<any>): string => {
    const o = merged(options)
    return JSON.stringify([id, o.url?.replace(/\/+$/, '') ?? null, o.agentId ?? null])
  }

  const makeEntry = (key: string, id: string, options: Partial<OpenWorkflowOptions<any>>): Entry => {
    const listeners = new Set<() => void>()
    let snapshot: WorkflowSnapshot<any>
    let handle: WorkflowHandle<any> | null = null
    let everSynced = false
    let error: AccordError | null = null
    let closed = false
    const stops: Array<() => void> = []

    const statusNow = (): WorkflowStatus => {
      if (closed) return 'closed'
      if (error !== null) return 'error'
      if (handle?.synced === true) return 'synced'
      return everSynced ? 'reconnecting' : 'connecting'
    }
    const refresh = (): void => {
      const next: WorkflowSnapshot<any> = { workflow: handle, state: handle?.state, status: statusNow(), error }
      if (next.workflow === snapshot.workflow && next.state === snapshot.state && next.status === snapshot.status && next.error === snapshot.error) return
      snapshot = next
      for (const listener of Array.from(listeners)) listener()
    }

    try {
      if (options.url === undefined || options.agentId === undefined) {
        throw new AccordError('INVALID_REQUEST', `workflow ${id}: pass url and agentId to useWorkflow or to createWorkflowRegistry`)
      }
      const h = open(id, options as OpenWorkflowOptions<any>)
      handle = h
      stops.push(h.subscribe(() => { refresh() }))
      const onStatus = (): void => {
        if (h.synced) everSynced = true
        refresh()
      }
      h.provider.on('status', onStatus)
      h.provider.on('sync', onStatus)
      // The handle's own 'closed' listener ran first and holds the reason; whenSynced reports it.
      const onClosed = (): void => {
        h.whenSynced().catch((err: unknown) => {
          error = err instanceof AccordError ? err : new AccordError('WORKFLOW_UNAVAILABLE', `workflow ${id} closed`, undefined, { cause: err })
          refresh()
        })
      }
      h.provider.on('closed', onClosed)
      stops.push(() => {
        h.provider.off('status', onStatus)
        h.provider.off('sync', onStatus)
        h.provider.off('closed', onClosed)
      })
    } catch (err) {
      error = err instanceof AccordError ? err : new AccordError('INVALID_REQUEST', String(err), undefined, { cause: err })
    }
    snapshot = { workflow: handle, state: handle?.state, status: statusNow(), error }

    return {
      key,
      refs: 0,
      timer: null,
      getSnapshot: () => snapshot,
      subscribe: listener => {
        listeners.add(listener)
        return () => { listeners.delete(listener) }
      },
      dispose: async () => {
        if (closed) return
        closed = true
        for (const stop of stops) stop()
        refresh()
        listeners.clear()
        await handle?.close()
      }
    }
  }

  const drop = (entry: Entry): Promise<void> => {
    if (entry.timer !== null) clearTimeout(entry.timer)
    entry.timer = null
    if (entries.get(entry.key) === entry) entries.delete(entry.key)
    return entry.dispose()
  }

  return {
    keyOf,
    acquire: (id, options) => {
      const key = keyOf(id, options)
      let entry = entries.get(key)
      if (entry === undefined) {
        entry = makeEntry(key, id, merged(options))
        entries.set(key, entry)
      }
      const held = entry
      held.refs++
      if (held.timer !== null) {
        clearTimeout(held.timer)
        held.timer = null
      }
      let released = false
      return {
        entry: held,
        release: () => {
          if (released) return
          released = true
          held.refs--
          if (held.refs > 0 || entries.get(key) !== held) return
          held.timer = setTimeout(() => { void drop(held) }, closeDelayMs)
        }
      }
    },
    get size () { return entries.size },
    close: async () => {
      await Promise.all(Array.from(entries.values()).map(drop))
    }
  }
}
