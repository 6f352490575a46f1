/**
 * Child tasks of the cold-load scenario, each run in a fresh process (so "cold" includes a cold
 * JIT, as after a restart): write a workflow whose log holds N updates through the store API
 * (Accord) or y-leveldb (reference), load it back, or sync it through a server with a real client.
 */
import { performance } from 'node:perf_hooks'
import { createRequire } from 'node:module'
import path from 'node:path'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { createLogger } from '../server/ops/log.ts'
import { archiveOldVersions } from '../src/store/retention.ts'
import { openLevelStore } from '../src/store/level.ts'
import { emptyMeta, type Store } from '../src/store/store.ts'
import { Workflow, type WorkflowOptions } from '../server/sync/workflow.ts'
import { serveRpc } from './ipc.ts'
import { agentValue, fillKilobyte, stateMap } from './workload.ts'

export const KEYFRAME_EVERY = 100

/** The N updates: a ~1 KB state, then agent writes; the last one sets `final` = N. */
/**
 * The log of a real workflow: about 1 KB of JSON, then five agents, each its own Yjs client (as
 * every agent process is), overwriting their own keys. (One client writing all five keys in turn
 * would leave ~100,000 unmergeable deleted entries in the document, which no real agents produce.)
 */
const makeUpdates = (n: number): { updates: Uint8Array[], doc: Y.Doc } => {
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array, origin: unknown) => { if (origin !== 'agent') updates.push(u) })
  fillKilobyte(doc)
  const agents = Array.from({ length: 5 }, () => {
    const agent = new Y.Doc()
    Y.applyUpdate(agent, Y.encodeStateAsUpdate(doc))
    agent.on('update', (u: Uint8Array) => {
      updates.push(u)
      Y.applyUpdate(doc, u, 'agent')
    })
    return agent
  })
  for (let i = 1; updates.length < n - 1; i++) stateMap(agents[i % 5] as Y.Doc).set(`agent-${i % 5}`, agentValue(i, i))
  for (const agent of agents) agent.destroy()
  stateMap(doc).set('final', n)
  return { updates, doc }
}

/** A small workflow a load can warm the process up with first (as in a server that is running). */
export const WARM_ID = 'warm-up'
const WARM_UPDATES = 1000

const accordWrite = async ({ dir, id, n }: { dir: string, id: string, n: number }): Promise<{ writeMs: number, compactMs: number, replayAllMs: number, chunks: number }> => {
  const store = await openLevelStore(dir)
  await writeVersions(store, WARM_ID, makeUpdates(WARM_UPDATES).updates)
  const { updates } = makeUpdates(n)
  const started = performance.now()
  await writeVersions(store, id, updates)
  const writeMs = performance.now() - started
  // Compaction: the server archives every keyframe interval that left the hot window.
  const c0 = performance.now()
  await archiveOldVersions(store, WARM_ID, { maxVersions: KEYFRAME_EVERY, archiveAfterDays: 30 })
  const chunks = await archiveOldVersions(store, id, { maxVersions: KEYFRAME_EVERY, archiveAfterDays: 30 })
  const compactMs = performance.now() - c0
  await store.close()
  // What loading would cost without keyframes: replaying the whole log.
  const r0 = performance.now()
  const scratch = new Y.Doc()
  scratch.transact(() => { for (const u of updates) Y.applyUpdate(scratch, u) })
  const replayAllMs = performance.now() - r0
  return { writeMs, compactMs, replayAllMs, chunks }
}

/**
 * One version per update, as the server would commit them, with a keyframe every KEYFRAME_EVERY
 * versions. Records are valid but cheap (no per-version snapshot or checksum: loading never reads
 * them), and commits are pipelined, 64 in flight; the final meta is written last.
 */
const writeVersions = async (store: Store, id: string, updates: Uint8Array[]): Promise<void> => {
  const doc = new Y.Doc()
  let meta = emptyMeta(id)
  let inFlight: Array<Promise<void>> = []
  for (let v = 1; v <= updates.length; v++) {
    const update = updates[v - 1] as Uint8Array
    Y.applyUpdate(doc, update)
    meta = { ...meta, head: v, updatedAt: Date.now(), bytes: meta.bytes + update.length, ...(v % KEYFRAME_EVERY === 0 ? { keyframe: v } : {}) }
    inFlight.push(store.commit(id, {
      meta,
      record: {
        workflowId: id,
        version: v,
        parentVersion: v - 1,
        snapshot: '',
        author: 'bench',
        timestamp: Date.now(),
        description: 'update by bench',
        meta: {},
        checksum: '0'.repeat(64),
        changes: []
      },
      updates: [update],
      keyframe: v % KEYFRAME_EVERY === 0 ? Y.encodeStateAsUpdate(doc) : undefined
    }))
    if (inFlight.length >= 64) {
      await Promise.all(inFlight)
      inFlight = []
    }
  }
  await Promise.all(inFlight)
  await store.putMeta(meta)
  doc.destroy()
}

/**
 * Open the store and load the workflow as the server does (Workflow.load: keyframe + log tail).
 * With `warm`, loads a small workflow first and times only the big load (totalMs = loadMs).
 */
const accordLoad = async ({ dir, id, warm }: { dir: string, id: string, warm: boolean }): Promise<{ openMs: number, loadMs: number, totalMs: number, ok: boolean }> => {
  const t0 = performance.now()
  const store = await openLevelStore(dir)
  let t1 = performance.now()
  const noop = (): void => {}
  const options: WorkflowOptions = {
    store,
    log: createLogger({ level: 'silent' }),
    keyframeEvery: KEYFRAME_EVERY,
    writeAttempts: 1,
    quotaBytes: Number.POSITIVE_INFINITY,
    onFailure: noop,
    hooks: [],
    timeouts: {}
  }
  if (warm) {
    // A running server: its code is warm (JIT), other workflows were loaded before.
    for (let i = 0; i < 5; i++) (await Workflow.load(WARM_ID, options)).destroy()
    t1 = performance.now()
  }
  const wf = await Workflow.load(id, options)
  const t2 = performance.now()
  const ok = stateMap(wf.doc).get('final') !== undefined
  wf.destroy()
  await store.close()
  return { openMs: t1 - t0, loadMs: t2 - t1, totalMs: t2 - t0, ok }
}

const yleveldb = (): { LeveldbPersistence: new (dir: string) => any } => {
  const require = createRequire(import.meta.url)
  const base = path.dirname(require.resolve('y-websocket-v2/package.json'))
  return require(require.resolve('y-leveldb', { paths: [base] }))
}

const refWrite = async ({ dir, id, n }: { dir: string, id: string, n: number }): Promise<{ writeMs: number }> => {
  const ldb = new (yleveldb().LeveldbPersistence)(dir)
  await Promise.all(makeUpdates(WARM_UPDATES).updates.map(u => ldb.storeUpdate(WARM_ID, u)))
  const { updates } = makeUpdates(n)
  const started = performance.now()
  // y-leveldb chains every write; queue them in slices so the chain stays short.
  for (let i = 0; i < updates.length; i += 1000) {
    await Promise.all(updates.slice(i, i + 1000).map(u => ldb.storeUpdate(id, u)))
  }
  const writeMs = performance.now() - started
  await ldb.destroy()
  return { writeMs }
}

/** y-leveldb's getYDoc: applies every stored update (and flushes them into one when > 500). */
const refLoad = async ({ dir, id, warm }: { dir: string, id: string, warm: boolean }): Promise<{ totalMs: number, ok: boolean }> => {
  let t0 = performance.now()
  const ldb = new (yleveldb().LeveldbPersistence)(dir)
  if (warm) {
    for (let i = 0; i < 5; i++) (await ldb.getYDoc(WARM_ID) as Y.Doc).destroy()
    t0 = performance.now()
  }
  const doc = await ldb.getYDoc(id) as Y.Doc
  const totalMs = performance.now() - t0
  const ok = stateMap(doc).get('final') !== undefined
  await ldb.destroy()
  return { totalMs, ok }
}

/** A stock client connects and waits until the stored state (its `final` key) has arrived. */
const clientSync = async ({ url, id, n }: { url: string, id: string, n: number }): Promise<{ ms: number, ok: boolean }> => {
  const doc = new Y.Doc()
  const t0 = performance.now()
  const provider = new WebsocketProvider(url, id, doc, { WebSocketPolyfill: WebSocket as any, disableBc: true })
  const ok = await new Promise<boolean>(resolve => {
    const timer = setTimeout(() => { resolve(false) }, 60_000)
    const check = (): void => {
      if (stateMap(doc).get('final') === n) {
        clearTimeout(timer)
        resolve(true)
      }
    }
    doc.on('update', check)
    check()
  })
  const ms = performance.now() - t0
  provider.destroy()
  doc.destroy()
  return { ms, ok }
}

serveRpc({ accordWrite, accordLoad, refWrite, refLoad, clientSync }, { pid: process.pid })
