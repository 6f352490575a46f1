/**
 * The inspector's data worker (bundled into dist/ui/worker.js, started by the page): it holds
 * what is big, off the page's thread. A live session is the package's own browser SDK
 * (`openWorkflow`, named `inspector`): Yjs applies the document here, the first sync of a 5 MB
 * state included. A version session reads the two states and the diff over the HTTP API and
 * parses them here, and so are the timeline's pages of version records (each holds its ops).
 * The page asks for the containers it shows open (`watch`) and gets their
 * first children back, again after every change that can alter them, coalesced to one message
 * per WORKER_FRAME_MS.
 *
 *   new Worker(new URL('worker.js', import.meta.url), { type: 'module' })   // see remote.ts
 */
import { openWorkflow, readRuntime, type JsonObject, type JsonPatchOp, type VersionRecord, type WorkflowHandle } from '../index.ts'
import { AccordError } from '../model/errors.ts'
import { stateRoot } from '../model/json-yjs.ts'
import { requestJson } from './api.ts'
import { INSPECTOR_AGENT, OPS_SHOWN, RAW_CHARS, summaryOf, type FromWorker, type NodeView, type Peer, type ToWorker, type WireError } from './protocol.ts'
import { affects, diffRows, viewAt } from './view-model.ts'

/** Coalescing window for a busy workflow's news: one message per frame at most. */
const WORKER_FRAME_MS = 16

const post = (message: FromWorker): void => { postMessage(message) }

const wireError = (err: unknown): WireError => err instanceof AccordError
  ? { code: err.code, message: err.message, details: err.details }
  : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }

interface Session {
  watch: (path: string, limit: number) => void
  unwatch: (path: string) => void
  rows: () => void
  raw: () => void
  close: () => void
}

const wsUrl = (): string => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`

const openLive = (sid: number, id: string, token: string | null, after: number): Session => {
  const handle: WorkflowHandle = openWorkflow(id, { url: wsUrl(), agentId: INSPECTOR_AGENT, ...(token === null ? {} : { token }) })
  const watched = new Map<string, number>()
  const dirty = new Set<string>()
  const changed = new Set<string>()
  let head = after
  let synced = false
  // What the page was last told, so an unchanged runtime or presence is not sent again.
  const told = { runtime: '', presence: '', synced: false, head: -1 }
  let timer: ReturnType<typeof setTimeout> | null = null
  let closed = false

  const flush = (): void => {
    timer = null
    if (closed) return
    const me = handle.doc.clientID
    const presence: Peer[] = []
    handle.provider.awareness.getStates().forEach((s, clientId) => {
      const agent = (s as { agent?: { id?: unknown } }).agent
      if (clientId !== me) presence.push({ clientId, agentId: typeof agent?.id === 'string' ? agent.id : `client:${clientId}` })
    })
    presence.sort((a, b) => a.agentId.localeCompare(b.agentId))
    const runtime = readRuntime(handle.doc)
    const now = { runtime: JSON.stringify(runtime), presence: JSON.stringify(presence), synced, head }
    const views = synced ? Array.from(dirty, (path): [string, NodeView | null] => [path, viewAt(stateRoot(handle.doc), path, watched.get(path) ?? 0)]) : []
    dirty.clear()
    // Nothing new, no message (a lease countdown is the page's own clock).
    if (changed.size > 0 || now.runtime !== told.runtime || now.presence !== told.presence || synced !== told.synced || head !== told.head) {
      const message: FromWorker = { type: 'live', sid, synced, head, presence, changed: Array.from(changed) }
      if (now.runtime !== told.runtime) message.runtime = runtime
      changed.clear()
      Object.assign(told, now)
      post(message)
    }
    if (views.length > 0) post({ type: 'views', sid, views })
  }
  const schedule = (): void => { if (timer === null && !closed) timer = setTimeout(flush, WORKER_FRAME_MS) }
  // Change events are listened to from the first sync on: the SDK computes a change's ops only
  // while someone listens, and for the first sync they would be the whole state as JSON (5 MB).
  let unsubscribeChanges = (): void => {}
  const onSynced = (): void => {
    if (synced || closed) return
    synced = true
    for (const path of watched.keys()) dirty.add(path)
    unsubscribeChanges = handle.subscribe(change => {
      for (const op of change.ops) changed.add(op.path)
      for (const path of watched.keys()) if (change.ops.some(op => affects(op.path, path))) dirty.add(path)
      schedule()
    })
    schedule()
  }

  // Records name the persisted versions (the timeline's head), in order, across reconnects.
  const records = handle.subscribe({ after }, record => {
    head = Math.max(head, record.version)
    schedule()
  })
  handle.doc.on('update', schedule)
  handle.provider.awareness.on('change', schedule)
  // The provider's own sync event, not whenSynced(): a 5 MB first sync on a loaded machine may outlast its timeout.
  handle.provider.on('sync', (isSynced: boolean) => { if (isSynced) onSynced() })
  if (handle.synced) onSynced()
  schedule()

  return {
    watch: (path, limit) => {
      watched.set(path, limit)
      dirty.add(path)
      schedule()
    },
    unwatch: path => {
      watched.delete(path)
      dirty.delete(path)
    },
    rows: () => {},
    raw: () => {},
    close: () => {
      closed = true
      if (timer !== null) clearTimeout(timer)
      unsubscribeChanges()
      records()
      void handle.close()
    }
  }
}

const openVersion = (sid: number, id: string, from: number, to: number, token: string | null): Session => {
  const wid = encodeURIComponent(id)
  const get = <T>(path: string): Promise<T> => requestJson<T>('GET', path, token)
  const stateAt = async (version: number): Promise<JsonObject> =>
    version === 0 ? {} : (await get<{ state: JsonObject }>(`/v1/workflows/${wid}?version=${version}`)).state
  let loaded: { before: JsonObject, after: JsonObject, ops: JsonPatchOp[] } | null = null
  // Watches that arrive before the states: answered once they are in.
  const early = new Map<string, number>()
  let closed = false
  const answer = (path: string, limit: number): void => {
    if (loaded !== null) post({ type: 'views', sid, views: [[path, viewAt(loaded.after, path, limit)]] })
  }
  Promise.all([
    stateAt(from),
    stateAt(to),
    get<JsonPatchOp[]>(`/v1/workflows/${wid}/diff?from=${from}&to=${to}`),
    get<VersionRecord[]>(`/v1/workflows/${wid}/history?limit=1&before=${to + 1}`)
  ]).then(([before, after, ops, records]) => {
    if (closed) return
    loaded = { before, after, ops }
    const record = records[0]?.version === to ? summaryOf(records[0]) : null
    post({ type: 'version', sid, record, count: ops.length, rows: diffRows(before, after, ops.slice(0, OPS_SHOWN)), changed: ops.map(op => op.path) })
    for (const [path, limit] of early) answer(path, limit)
    early.clear()
  }, (err: unknown) => { if (!closed) post({ type: 'error', sid, error: wireError(err) }) })

  return {
    watch: (path, limit) => { if (loaded === null) early.set(path, limit); else answer(path, limit) },
    unwatch: path => { early.delete(path) },
    rows: () => { if (loaded !== null) post({ type: 'rows', sid, rows: diffRows(loaded.before, loaded.after, loaded.ops) }) },
    raw: () => {
      if (loaded === null) return
      let text = JSON.stringify(loaded.ops.slice(0, 2000), null, 2)
      if (text.length > RAW_CHARS) text = `${text.slice(0, RAW_CHARS)}\n… (${text.length - RAW_CHARS} more characters)`
      post({ type: 'raw', sid, text })
    },
    close: () => {
      closed = true
      loaded = null
    }
  }
}

const sessions = new Map<number, Session>()

addEventListener('message', (event: MessageEvent<ToWorker>) => {
  const m = event.data
  try {
    if (m.type === 'live') sessions.set(m.sid, openLive(m.sid, m.id, m.token, m.after))
    else if (m.type === 'version') sessions.set(m.sid, openVersion(m.sid, m.id, m.from, m.to, m.token))
    else if (m.type === 'history') {
      requestJson<VersionRecord[]>('GET', `/v1/workflows/${encodeURIComponent(m.id)}/history?limit=${m.limit}&before=${m.before}`, m.token)
        .then(page => { post({ type: 'history', sid: m.sid, records: page.map(summaryOf) }) }, (err: unknown) => { post({ type: 'error', sid: m.sid, error: wireError(err) }) })
    } else if (m.type === 'close') {
      sessions.get(m.sid)?.close()
      sessions.delete(m.sid)
    } else {
      const s = sessions.get(m.sid)
      if (s === undefined) return
      if (m.type === 'watch') s.watch(m.path, m.limit)
      else if (m.type === 'unwatch') s.unwatch(m.path)
      else if (m.type === 'rows') s.rows()
      else s.raw()
    }
  } catch (err) {
    post({ type: 'error', sid: m.sid, error: wireError(err) })
  }
})
