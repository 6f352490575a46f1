/**
 * The page's side of the data worker (worker.ts): starts it, opens sessions on it (a live
 * workflow, or one version and its diff) and keeps, per session, the views of the tree
 * containers that are open on the page. A container is watched while at least one node shows
 * it open; the worker is asked for the largest number of children any of them shows.
 *
 *   const remote = createRemote()
 *   const s = remote.open({ type: 'live', id: 'wf', token: null, after: 0 }, message => { ... })
 *   const stop = s.tree.watch('/items', 200); s.tree.view('/items'); stop(); s.close()
 *   remote.close()
 */
import type { AccordErrorCode } from '../model/errors.ts'
import { InspectorError } from './api.ts'
import type { FromWorker, NodeView, RecordSummary, ToWorker, WireError } from './protocol.ts'

/** The open part of one tree, as far as the worker has sent it. */
export interface TreeSource {
  /** The container at `path` (a JSON pointer): undefined until the worker sent it, null when there is none. */
  view: (path: string) => NodeView | null | undefined
  /** Shows the container at `path` with its first `limit` children until the returned function is called. */
  watch: (path: string, limit: number) => () => void
  /** Called after views arrived. */
  subscribe: (listener: () => void) => () => void
}

export interface RemoteSession {
  tree: TreeSource
  /** Asks for every row of a version's diff, or its raw ops. */
  request: (what: 'rows' | 'raw') => void
  close: () => void
}

type Start = ToWorker extends infer M ? M extends { type: 'live' | 'version' } ? Omit<M, 'sid'> : never : never
type News = Exclude<FromWorker, { type: 'views' }>

export interface Remote {
  open: (start: Start, onMessage: (message: News) => void) => RemoteSession
  /** A page of version records, newest first, before `before` (read and parsed by the worker). */
  history: (id: string, token: string | null, limit: number, before: number) => Promise<RecordSummary[]>
  close: () => void
}

export const errorFrom = (e: WireError): InspectorError => new InspectorError(e.code as AccordErrorCode, e.message, e.details)

const createTree = (send: (message: { type: 'watch', path: string, limit: number } | { type: 'unwatch', path: string }) => void): TreeSource & { receive: (views: Array<[string, NodeView | null]>) => void } => {
  const watchers = new Map<string, Map<number, number>>()
  const views = new Map<string, NodeView | null>()
  const listeners = new Set<() => void>()
  let next = 0
  const widest = (path: string): number | undefined => {
    const limits = watchers.get(path)
    return limits === undefined || limits.size === 0 ? undefined : Math.max(...limits.values())
  }
  return {
    view: path => views.get(path),
    watch: (path, limit) => {
      const id = ++next
      const before = widest(path)
      const limits = watchers.get(path) ?? new Map<number, number>()
      watchers.set(path, limits)
      limits.set(id, limit)
      if (widest(path) !== before) send({ type: 'watch', path, limit: widest(path) as number })
      return () => {
        const was = widest(path)
        limits.delete(id)
        const now = widest(path)
        if (now === undefined) {
          // The view stays until watched again (then the worker sends it afresh): a node that
          // re-watches with more children does not blink empty in between.
          watchers.delete(path)
          send({ type: 'unwatch', path })
        } else if (now !== was) send({ type: 'watch', path, limit: now })
      }
    },
    subscribe: listener => {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    receive: received => {
      // A view that arrives after its last watcher left is dropped (the worker may have sent it before the unwatch).
      for (const [path, view] of received) if (watchers.has(path)) views.set(path, view)
      for (const listener of listeners) listener()
    }
  }
}

export const createRemote = (): Remote => {
  const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' })
  const sessions = new Map<number, { onMessage: (message: News) => void, tree: ReturnType<typeof createTree> }>()
  let next = 0
  worker.addEventListener('message', (event: MessageEvent<FromWorker>) => {
    const m = event.data
    const s = sessions.get(m.sid)
    if (s === undefined) return
    if (m.type === 'views') s.tree.receive(m.views)
    else s.onMessage(m)
  })
  // A worker that cannot start (or throws) leaves every view waiting: say so instead.
  worker.addEventListener('error', (event: ErrorEvent) => {
    for (const [sid, s] of sessions) s.onMessage({ type: 'error', sid, error: { code: 'INTERNAL', message: `the inspector's worker failed: ${event.message || 'it could not be loaded'}` } })
  })
  const post = (message: ToWorker): void => { worker.postMessage(message) }
  return {
    open: (start, onMessage) => {
      const sid = ++next
      const tree = createTree(m => { post({ ...m, sid }) })
      sessions.set(sid, { onMessage, tree })
      post({ ...start, sid } as ToWorker)
      return {
        tree,
        request: what => { post({ type: what, sid }) },
        close: () => {
          sessions.delete(sid)
          post({ type: 'close', sid })
        }
      }
    },
    history: (id, token, limit, before) => new Promise((resolve, reject) => {
      const sid = ++next
      sessions.set(sid, {
        tree: createTree(() => {}),
        onMessage: m => {
          sessions.delete(sid)
          if (m.type === 'history') resolve(m.records)
          else if (m.type === 'error') reject(errorFrom(m.error))
        }
      })
      post({ type: 'history', sid, id, token, limit, before })
    }),
    close: () => {
      sessions.clear()
      worker.terminate()
    }
  }
}
