/**
 * The LangGraph checkpoint saver's methods against their documented contract, on a real server:
 * getTuple, list (ordering, filter, before, limit, namespaces), put, putWrites (ordering, no
 * overwrite of regular writes), deleteThread, missing ids, thread id mapping, durability, close.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { emptyCheckpoint, uuid6, type Checkpoint, type CheckpointMetadata } from '@langchain/langgraph-checkpoint'
import { startServer, removeTempDirs, restartOnSamePort, type TestServer } from './helpers/server.ts'
import { waitFor } from './helpers/wait.ts'
import { AccordSaver, InvalidThreadIdError, SaverConfigError, threadToWorkflowId, workflowIdToThread } from '../src/langgraph/node.ts'
import { openWorkflow, ClosedError } from '../src/node/index.ts'
import { HumanMessage } from '@langchain/core/messages'

let srv: TestServer | null = null
const savers: AccordSaver[] = []
const shared = async (): Promise<TestServer> => {
  srv ??= await startServer()
  return srv
}
const saver = async (agentId?: string): Promise<AccordSaver> => {
  const s = new AccordSaver({ url: (await shared()).url, agentId })
  savers.push(s)
  return s
}
afterEach(async () => { await Promise.all(savers.splice(0).map(s => s.close())) })
afterAll(async () => {
  await srv?.stop()
  srv = null
  await removeTempDirs()
})

let counter = 0
const freshThread = (name: string): string => `lg-${name}-${Date.now()}-${++counter}`

/** A checkpoint with the given channel values, each at version 1 (or the given versions). */
const checkpoint = (values: Record<string, unknown>, versions: Record<string, string> = {}): Checkpoint => {
  const c = emptyCheckpoint()
  c.id = uuid6(-1)
  c.channel_values = values
  c.channel_versions = Object.fromEntries(Object.keys(values).map(k => [k, versions[k] ?? '1']))
  return c
}
const meta = (step: number, extra: Record<string, unknown> = {}): CheckpointMetadata => ({ source: 'loop', step, parents: {}, ...extra })
const cfg = (thread_id: string, extra: Record<string, unknown> = {}) => ({ configurable: { thread_id, checkpoint_ns: '', ...extra } })

const collect = async <T>(gen: AsyncGenerator<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of gen) out.push(x)
  return out
}

describe('thread ids', () => {
  it('keeps valid workflow ids and maps others reversibly; refuses ids too long to map', () => {
    expect(threadToWorkflowId('chat-1')).toBe('chat-1')
    const odd = ['chat 1', 'a/b', 'ünï ✓', 'b64.abc', '-leading']
    for (const t of odd) {
      const id = threadToWorkflowId(t)
      expect(id).toMatch(/^b64\.[A-Za-z0-9_-]+$/)
      expect(workflowIdToThread(id)).toBe(t)
    }
    expect(new Set(odd.map(threadToWorkflowId)).size).toBe(odd.length)
    expect(() => threadToWorkflowId('x'.repeat(129))).toThrow(InvalidThreadIdError)
    expect(() => threadToWorkflowId('')).toThrow(InvalidThreadIdError)
    expect(threadToWorkflowId('é'.repeat(46))).toMatch(/^b64\./)
  })
})

describe('AccordSaver', () => {
  it('put then getTuple returns the checkpoint, its metadata and its config; the latest by default', async () => {
    const s = await saver()
    const t = freshThread('put')
    const c1 = checkpoint({ messages: ['hi'], count: 1 })
    const r1 = await s.put(cfg(t), c1, meta(0), {})
    expect(r1).toEqual({ configurable: { thread_id: t, checkpoint_ns: '', checkpoint_id: c1.id } })
    const c2 = checkpoint({ messages: ['hi', 'there'], count: 2 }, { messages: '2', count: '2' })
    await s.put(r1, c2, meta(1), {})
    const latest = await s.getTuple(cfg(t))
    expect(latest?.checkpoint.id).toBe(c2.id)
    expect(latest?.checkpoint.channel_values).toEqual({ messages: ['hi', 'there'], count: 2 })
    expect(latest?.metadata).toEqual(meta(1))
    expect(latest?.parentConfig?.configurable?.checkpoint_id).toBe(c1.id)
    const first = await s.getTuple(cfg(t, { checkpoint_id: c1.id }))
    expect(first?.checkpoint.channel_values).toEqual({ messages: ['hi'], count: 1 })
    expect(first?.parentConfig).toBeUndefined()
    expect(first?.pendingWrites).toEqual([])
  })

  it('returns undefined for missing threads, namespaces and checkpoint ids', async () => {
    const s = await saver()
    const t = freshThread('missing')
    expect(await s.getTuple(cfg(t))).toBeUndefined()
    expect(await s.getTuple({ configurable: {} })).toBeUndefined()
    await s.put(cfg(t), checkpoint({ a: 1 }), meta(0), {})
    expect(await s.getTuple(cfg(t, { checkpoint_id: uuid6(-1) }))).toBeUndefined()
    expect(await s.getTuple(cfg(t, { checkpoint_ns: 'child:1' }))).toBeUndefined()
    expect(await collect(s.list(cfg(freshThread('none'))))).toEqual([])
  })

  it('stores JSON channel values readably and others as typed serde bytes, one version each', async () => {
    const s = await saver('lg-writer')
    const t = freshThread('json')
    const bytes = new Uint8Array([1, 2, 3])
    const message = new HumanMessage({ content: 'hello', id: 'm1' })
    const c = checkpoint({ plan: { steps: ['a', 'b'] }, raw: bytes, messages: [message], gone: undefined })
    await s.put(cfg(t), c, meta(3), {})
    const got = await s.getTuple(cfg(t))
    expect(got?.checkpoint.channel_values.plan).toEqual({ steps: ['a', 'b'] })
    expect(got?.checkpoint.channel_values.raw).toEqual(bytes)
    const [back] = (got?.checkpoint.channel_values.messages ?? []) as HumanMessage[]
    expect(back).toBeInstanceOf(HumanMessage)
    expect(back?.content).toBe('hello')
    expect('gone' in (got?.checkpoint.channel_values ?? {})).toBe(false)

    // Another agent sees the state and the version's author and description.
    const watcher = openWorkflow(threadToWorkflowId(t), { url: (await shared()).url, agentId: 'watcher' })
    try {
      await watcher.whenSynced()
      const lg = watcher.state.langgraph as any
      expect(lg.thread_id).toBe(t)
      expect(lg.head).toBe(c.id)
      expect(lg.values.plan).toEqual({ steps: ['a', 'b'] })
      expect(lg.namespaces[''].blobs.plan['1']).toEqual({ json: { steps: ['a', 'b'] } })
      expect(lg.namespaces[''].blobs.raw['1'].serde).toBeTypeOf('string')
      // A LangChain message is not plain JSON: serde's JSON text, stored parsed and readable.
      expect(JSON.stringify(lg.values.messages)).toContain('hello')
      const [v] = await watcher.history({ limit: 1 })
      expect(v?.author).toBe('lg-writer')
      expect(v?.description).toBe(`LangGraph checkpoint ${c.id}: step 3, source loop`)
    } finally {
      await watcher.close()
    }
  })

  it('put resolves only after the server stored the version', async () => {
    const s = await saver()
    const t = freshThread('durable')
    const c = checkpoint({ a: 1 })
    await s.put(cfg(t), c, meta(0), {})
    // Right after put resolves, the server's history already holds it.
    const probe = openWorkflow(threadToWorkflowId(t), { url: (await shared()).url, agentId: 'probe' })
    try {
      await probe.whenSynced()
      const [v] = await probe.history({ limit: 1 })
      expect(v?.description).toContain(c.id)
    } finally {
      await probe.close()
    }
  })

  it('stores a value once while checkpoints keep it, and keeps forks that reuse a version apart', async () => {
    const s = await saver()
    const t = freshThread('blobs')
    const c1 = checkpoint({ a: 'one' })
    const at1 = await s.put(cfg(t), c1, meta(0), {})
    const c2 = checkpoint({ a: 'one', b: 'two' }, { a: '1', b: '2' })
    await s.put(at1, c2, meta(1), {})
    // A fork from c1 (time travel) reaches b's version 2 with another value.
    const c3 = checkpoint({ a: 'one', b: 'other' }, { a: '1', b: '2' })
    await s.put(at1, c3, meta(1, { source: 'fork' }), {})
    expect((await s.getTuple(cfg(t, { checkpoint_id: c2.id })))?.checkpoint.channel_values).toEqual({ a: 'one', b: 'two' })
    expect((await s.getTuple(cfg(t, { checkpoint_id: c3.id })))?.checkpoint.channel_values).toEqual({ a: 'one', b: 'other' })
    const probe = openWorkflow(threadToWorkflowId(t), { url: (await shared()).url, agentId: 'probe' })
    try {
      await probe.whenSynced()
      const blobs = (probe.state.langgraph as any).namespaces[''].blobs
      expect(Object.keys(blobs.a)).toEqual(['1'])
      expect(Object.keys(blobs.b).sort()).toEqual(['2', `2~${c3.id}`])
    } finally {
      await probe.close()
    }
  })

  it('a put made while the server is down resolves once the restarted server has stored it', async () => {
    const own = await startServer()
    let again: TestServer | null = null
    const s = new AccordSaver({ url: own.url, agentId: 'patient' })
    savers.push(s)
    try {
      const t = freshThread('restart')
      const first = checkpoint({ a: 1 })
      const at = await s.put(cfg(t), first, meta(0), {})
      await own.stop()
      let resolved = false
      const second = checkpoint({ a: 2 }, { a: '2' })
      const pending = s.put(at, second, meta(1), {}).then(r => { resolved = true; return r })
      again = await restartOnSamePort(own)
      expect(resolved).toBe(false)
      await pending
      // A new process (here: a new saver) finds it on the restarted server.
      const reader = new AccordSaver({ url: again.url })
      savers.push(reader)
      expect((await reader.getTuple(cfg(t)))?.checkpoint.id).toBe(second.id)
    } finally {
      await s.close()
      await again?.stop()
    }
  })

  it('list: newest first, with before, limit, metadata filter and namespaces', async () => {
    const s = await saver()
    const t = freshThread('list')
    const ids: string[] = []
    let parent = cfg(t) as any
    for (let step = 0; step < 5; step++) {
      const c = checkpoint({ n: step }, { n: String(step + 1) })
      ids.push(c.id)
      parent = await s.put(parent, c, meta(step, { tag: step % 2 === 0 ? 'even' : 'odd', deep: { k: step } }), {})
    }
    const sub = checkpoint({ inner: true })
    await s.put(cfg(t, { checkpoint_ns: 'child:abc' }), sub, meta(0), {})

    const all = await collect(s.list({ configurable: { thread_id: t } }))
    expect(all.map(x => x.checkpoint.id)).toEqual([sub.id, ...ids.slice().reverse()])
    const root = await collect(s.list({ configurable: { thread_id: t, checkpoint_ns: '' } }))
    expect(root.map(x => x.checkpoint.id)).toEqual(ids.slice().reverse())
    expect(root[0]?.checkpoint.channel_values).toEqual({ n: 4 })
    const child = await collect(s.list({ configurable: { thread_id: t, checkpoint_ns: 'child:abc' } }))
    expect(child.map(x => [x.config.configurable?.checkpoint_ns, x.checkpoint.id])).toEqual([['child:abc', sub.id]])

    const limited = await collect(s.list({ configurable: { thread_id: t } }, { limit: 2 }))
    expect(limited.map(x => x.checkpoint.id)).toEqual([sub.id, ids[4]])
    const before = await collect(s.list({ configurable: { thread_id: t, checkpoint_ns: '' } }, { before: cfg(t, { checkpoint_id: ids[3] }) }))
    expect(before.map(x => x.checkpoint.id)).toEqual([ids[2], ids[1], ids[0]])
    const even = await collect(s.list(cfg(t), { filter: { tag: 'even' } }))
    expect(even.map(x => x.metadata?.step)).toEqual([4, 2, 0])
    const deep = await collect(s.list(cfg(t), { filter: { deep: { k: 1 }, source: 'loop' } }))
    expect(deep.map(x => x.checkpoint.id)).toEqual([ids[1]])
    expect(await collect(s.list(cfg(t), { limit: 0 }))).toEqual([])
    const one = await collect(s.list(cfg(t, { checkpoint_id: ids[2] })))
    expect(one.map(x => x.checkpoint.id)).toEqual([ids[2]])

    // Without a thread id: every thread this saver has opened.
    const other = freshThread('list-other')
    const oc = checkpoint({ x: 1 })
    await s.put(cfg(other), oc, meta(0), {})
    const everywhere = await collect(s.list({}))
    expect(everywhere.map(x => x.checkpoint.id)).toContain(oc.id)
    expect(everywhere.length).toBe(7)
  })

  it('putWrites: pending writes per task and channel, in task path order, regular ones never replaced', async () => {
    const s = await saver()
    const t = freshThread('writes')
    const c = checkpoint({ a: 1 })
    const at = await s.put(cfg(t), c, meta(0), {})
    await s.putWrites(at, [['a', 2], ['b', { deep: [1] }]], 'task-b', '~__pregel_pull, b')
    await s.putWrites(at, [['a', 3]], 'task-a', '~__pregel_pull, a')
    await s.putWrites(at, [['a', 99]], 'task-a', '~__pregel_pull, a')
    await s.putWrites(at, [['__error__', 'first']], 'task-c', '~__pregel_pull, c')
    await s.putWrites(at, [['__error__', 'second']], 'task-c', '~__pregel_pull, c')
    const got = await s.getTuple(at)
    expect(got?.pendingWrites).toEqual([
      ['task-a', 'a', 3],
      ['task-b', 'a', 2],
      ['task-b', 'b', { deep: [1] }],
      ['task-c', '__error__', 'second']
    ])
    // Writes belong to their checkpoint only.
    const next = checkpoint({ a: 2 }, { a: '2' })
    const at2 = await s.put(at, next, meta(1), {})
    expect((await s.getTuple(at2))?.pendingWrites).toEqual([])
    await expect(s.putWrites(cfg(t), [['a', 1]], 'x')).rejects.toBeInstanceOf(SaverConfigError)
  })

  it('subgraph namespaces keep their own checkpoints and writes', async () => {
    const s = await saver()
    const t = freshThread('ns')
    const root = checkpoint({ r: 1 })
    const child = checkpoint({ c: 1 })
    const atRoot = await s.put(cfg(t), root, meta(0), {})
    const atChild = await s.put(cfg(t, { checkpoint_ns: 'sub:1' }), child, meta(0), {})
    await s.putWrites(atChild, [['c', 2]], 'task', 'p')
    expect((await s.getTuple(cfg(t)))?.checkpoint.id).toBe(root.id)
    expect((await s.getTuple(atRoot))?.pendingWrites).toEqual([])
    const sub = await s.getTuple(cfg(t, { checkpoint_ns: 'sub:1' }))
    expect(sub?.checkpoint.channel_values).toEqual({ c: 1 })
    expect(sub?.pendingWrites).toEqual([['task', 'c', 2]])
    expect(sub?.config.configurable?.checkpoint_ns).toBe('sub:1')
  })

  it('deleteThread removes the thread\'s checkpoints and writes and nothing of other threads or keys', async () => {
    const s = await saver()
    const t = freshThread('delete')
    const keep = freshThread('keep')
    const at = await s.put(cfg(t), checkpoint({ a: 1 }), meta(0), {})
    await s.putWrites(at, [['a', 2]], 'task')
    await s.put(cfg(keep), checkpoint({ b: 1 }), meta(0), {})
    const other = openWorkflow(threadToWorkflowId(t), { url: (await shared()).url, agentId: 'notes' })
    try {
      await other.whenSynced()
      other.update(d => { d.notes = 'mine' })
      await waitFor(async () => (await other.history({ limit: 1 }))[0]?.author === 'notes', { what: 'notes stored' })
      await s.deleteThread(t)
      expect(await s.getTuple(cfg(t))).toBeUndefined()
      expect(await collect(s.list(cfg(t)))).toEqual([])
      expect((await s.getTuple(cfg(keep)))?.checkpoint.channel_values).toEqual({ b: 1 })
      await waitFor(() => other.state.langgraph === undefined, { what: 'deletion seen by another agent' })
      expect(other.state.notes).toBe('mine')
      await s.deleteThread(freshThread('never')) // a thread that never existed: no error
    } finally {
      await other.close()
    }
  })

  it('thread ids that are not workflow ids work end to end; config errors are typed', async () => {
    const s = await saver()
    const t = `odd thread/${++counter} ✓`
    const c = checkpoint({ a: 1 })
    await s.put(cfg(t), c, meta(0), {})
    expect((await s.getTuple(cfg(t)))?.config.configurable?.thread_id).toBe(t)
    await expect(s.put({ configurable: {} }, checkpoint({}), meta(0), {})).rejects.toBeInstanceOf(SaverConfigError)
    await expect(s.put(cfg('y'.repeat(200)), checkpoint({}), meta(0), {})).rejects.toBeInstanceOf(InvalidThreadIdError)
  })

  it('channel, task and namespace names like constructor work; __proto__ is refused with a typed error', async () => {
    const s = await saver()
    const t = freshThread('keys')
    const c = checkpoint({ constructor: 'c', toString: { x: 1 }, hasOwnProperty: [1] })
    const at = await s.put(cfg(t, { checkpoint_ns: 'constructor' }), c, meta(0), {})
    await s.putWrites(at, [['constructor', 2], ['prototype', 3]], 'toString')
    const got = await s.getTuple(at)
    expect(got?.checkpoint.channel_values).toEqual({ constructor: 'c', toString: { x: 1 }, hasOwnProperty: [1] })
    expect(got?.pendingWrites).toEqual([['toString', 'constructor', 2], ['toString', 'prototype', 3]])
    expect(await s.getTuple(cfg(t, { checkpoint_ns: 'toString' }))).toBeUndefined()
    await expect(s.put(cfg(t, { checkpoint_ns: '__proto__' }), checkpoint({ a: 1 }), meta(0), {})).rejects.toBeInstanceOf(SaverConfigError)
    await expect(s.putWrites(at, [['__proto__', 1]], 'task')).rejects.toBeInstanceOf(SaverConfigError)
    const polluted = checkpoint({})
    Object.defineProperty(polluted.channel_values, '__proto__', { value: 1, enumerable: true })
    await expect(s.put(cfg(t), polluted, meta(0), {})).rejects.toBeInstanceOf(SaverConfigError)
    expect(({} as Record<string, unknown>).x).toBeUndefined()
  })

  it('two savers share a thread only by id; close releases connections and refuses later calls', async () => {
    const a = await saver('a')
    const b = await saver('b')
    const t = freshThread('share')
    expect(await b.getTuple(cfg(t))).toBeUndefined()
    const c = checkpoint({ who: 'a' })
    await a.put(cfg(t), c, meta(0), {})
    // b's connection was open already: its read still sees a's acknowledged put.
    expect((await b.getTuple(cfg(t)))?.checkpoint.id).toBe(c.id)
    let last = c.id
    for (let i = 0; i < 5; i++) {
      const next = checkpoint({ who: `a${i}` }, { who: String(i + 2) })
      last = next.id
      await a.put(cfg(t), next, meta(i + 1), {})
      expect((await b.getTuple(cfg(t)))?.checkpoint.channel_values).toEqual({ who: `a${i}` })
    }
    expect(await b.getTuple(cfg(freshThread('other')))).toBeUndefined()
    // One connection per thread opened: a has 1, b has 2; closing each saver releases its own.
    const server = (await shared()).server
    await waitFor(() => server.connectionCount() === 3, { what: 'three saver connections' })
    await a.close()
    await a.close()
    await expect(a.getTuple(cfg(t))).rejects.toBeInstanceOf(ClosedError)
    await waitFor(() => server.connectionCount() === 2, { what: 'a\'s connection closed' })
    expect((await b.getTuple(cfg(t)))?.checkpoint.id).toBe(last)
    await b.close()
    await waitFor(() => server.connectionCount() === 0, { what: 'b\'s connections closed' })
  })
})
