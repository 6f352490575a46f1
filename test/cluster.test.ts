/**
 * Scale-out: three Accord servers on one PostgreSQL store with a Redis bus. Any server serves any
 * workflow; edits made through one reach clients of the others; concurrent writes through all
 * three keep one gapless history; presence, change streams and task claims work across servers;
 * a server that misses every bus message still converges from the store.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './helpers/server.ts'
import { closeClients, sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { api, openSse } from './helpers/http.ts'
import { expectGapless, historyOf } from './helpers/history.ts'
import { POSTGRES_URL, REDIS_URL, dropServiceData, metricOf, serverIdOf, servicesMissing, uniqueName, writerOf } from './helpers/services.ts'
import { Redis } from 'ioredis'
import { openPostgresStore } from '../server/store/postgres.ts'
import type { Store } from '../src/store/store.ts'

const missing = await servicesMissing()
if (missing !== null) console.log(`cluster tests skipped: ${missing}`)

interface Node { srv: TestServer, store: Store, stop: () => Promise<void> }

let schema = ''
let prefix = ''
const nodes: Node[] = []

const startNode = async (options: { prefix?: string, graceMs?: number } = {}): Promise<Node> => {
  const store = await openPostgresStore(POSTGRES_URL, { schema })
  const srv = await startServer({ store, evictionGraceMs: options.graceMs ?? 0, cluster: { redisUrl: REDIS_URL, prefix: options.prefix ?? prefix, reconcileMs: 300, forwardTimeoutMs: 500 } })
  let stopped = false
  const node: Node = {
    srv,
    store,
    stop: async () => {
      if (stopped) return
      stopped = true
      await srv.stop()
      await store.close()
    }
  }
  nodes.push(node)
  return node
}

const cluster = async (n = 3): Promise<Node[]> => {
  const out: Node[] = []
  for (let i = 0; i < n; i++) out.push(await startNode()) // one at a time: the first runs the migrations
  return out
}

describe.skipIf(missing !== null)('cluster: PostgreSQL store + Redis bus', () => {
  afterEach(async () => {
    await closeClients()
    await Promise.all(nodes.splice(0).map(n => n.stop()))
    await dropServiceData({ schema, redisPrefix: prefix })
  })
  const fresh = (): void => {
    schema = uniqueName('cluster')
    prefix = `${schema}:`
  }

  it('an edit through one server reaches clients of the others, in one gapless history', async () => {
    fresh()
    const [a, b, c] = await cluster()
    const alice = sdkAgent(a!.srv.url, 'wf-fan', 'alice')
    const bob = sdkAgent(b!.srv.url, 'wf-fan', 'bob')
    const stock = stockClient(c!.srv.url, 'wf-fan')
    await Promise.all([alice.whenSynced(), bob.whenSynced(), stock.synced()])
    alice.update(d => { d.alice = 1 }, { description: 'from a' })
    await waitFor(() => (bob.state as Record<string, unknown>).alice === 1, { what: 'a -> b' })
    await waitFor(() => (stock.json() as Record<string, unknown>).alice === 1, { what: 'a -> c' })
    bob.update(d => { d.bob = [1, 2] })
    stock.doc.getMap('state').set('stock', true)
    const final = await waitForConvergence([() => alice.state, () => bob.state, () => stock.json()], 15_000)
    expect(final).toEqual({ alice: 1, bob: [1, 2], stock: true })
    // bob's and the stock client's edits may share a version (the writer commits what arrived together).
    const stored = async (node: Node): Promise<number> => (await historyOf(node.srv.server, 'wf-fan')).flatMap(v => v.changes).length
    for (const node of [a!, b!, c!]) {
      await waitFor(async () => (await stored(node)) === 3, { what: 'every change in every server\'s history' })
      expectGapless(await historyOf(node.srv.server, 'wf-fan'))
    }
    expect((await historyOf(c!.srv.server, 'wf-fan')).at(-1)?.description).toBe('from a')
  })

  it('concurrent writes through three servers converge with a gapless history whose states replay', async () => {
    fresh()
    const servers = await cluster()
    const agents = servers.flatMap((node, i) => [0, 1].map(j => sdkAgent(node.srv.url, 'wf-storm', `agent-${i}-${j}`)))
    await Promise.all(agents.map(a => a.whenSynced()))
    for (let round = 0; round < 30; round++) {
      agents.forEach((agent, k) => agent.update(d => {
        d[`${agent.agentId}`] = round
        d.shared = `${k}:${round}`
      }))
      if (round % 5 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    const final = await waitForConvergence(agents.map(a => () => a.state), 30_000)
    for (const agent of agents) expect((final as Record<string, unknown>)[agent.agentId]).toBe(29)
    const versions = await historyOf(servers[0]!.srv.server, 'wf-storm')
    expectGapless(versions)
    const head = versions[0]!.version
    expect(await servers[1]!.srv.server.stateAt('wf-storm', head)).toEqual(final)
    // Each record's changes, applied in order, rebuild the final state.
    const rebuilt = versions.slice().reverse().reduce<Record<string, unknown>>((state, v) => {
      const next = structuredClone(state)
      for (const op of v.changes) {
        const key = op.path.split('/')[1] as string
        if (op.op === 'remove' && op.path.split('/').length === 2) delete next[key]
        else if (op.path.split('/').length === 2 && (op.op === 'add' || op.op === 'replace')) next[key] = op.value
      }
      return next
    }, {})
    expect(rebuilt).toEqual(final)
  })

  it('one server writes a workflow: the others forward to it, nobody races for version numbers, and another takes over when it leaves', async () => {
    fresh()
    const servers = await cluster()
    const http = (node: Node): string => `http://127.0.0.1:${node.srv.port}`
    const agents = servers.flatMap((node, i) => [0, 1].map(j => sdkAgent(node.srv.url, 'wf-writer', `agent-${i}-${j}`)))
    await Promise.all(agents.map(a => a.whenSynced()))
    const writerId = await writerOf(prefix, 'wf-writer')
    const ids = await Promise.all(servers.map(n => serverIdOf(http(n))))
    const writer = servers[ids.indexOf(writerId as string)]
    expect(writer).toBeDefined()
    const followers = servers.filter(n => n !== writer)

    const storm = async (label: string, from: typeof agents): Promise<Record<string, unknown>> => {
      for (let round = 0; round < 20; round++) {
        from.forEach(agent => agent.update(d => { d[agent.agentId] = `${label}${round}` }))
        if (round % 4 === 0) await new Promise(resolve => setImmediate(resolve))
      }
      return waitForConvergence(from.map(a => () => a.state), 30_000) as Promise<Record<string, unknown>>
    }
    const first = await storm('a', agents)
    for (const agent of agents) expect(first[agent.agentId]).toBe('a19')
    for (const node of servers) expect(await metricOf(http(node), 'accord_writer_races_total')).toBe(0)
    for (const node of followers) expect(await metricOf(http(node), 'accord_forwarded_updates_total')).toBeGreaterThan(0)
    expect(await metricOf(http(writer!), 'accord_forwarded_updates_total')).toBe(0)
    expect(await metricOf(http(writer!), 'accord_workflows_written')).toBe(1)
    for (const node of followers) expect(await metricOf(http(node), 'accord_workflows_written')).toBe(0)

    // The writer leaves; its clients are gone, the others keep writing and one of them takes over.
    const writerAgents = agents.filter((_, k) => servers[Math.floor(k / 2)] === writer)
    const rest = agents.filter(a => !writerAgents.includes(a))
    for (const agent of writerAgents) agent.close()
    await writer!.stop()
    // Its lease went with it, not a lease period later: the next server can take over at once.
    expect(await writerOf(prefix, 'wf-writer')).toBeNull()
    const second = await storm('b', rest)
    for (const agent of rest) expect(second[agent.agentId]).toBe('b19')
    const newWriter = await writerOf(prefix, 'wf-writer')
    expect(newWriter).not.toBeNull()
    expect(newWriter).not.toBe(writerId)
    for (const node of followers) {
      await waitFor(async () => (await historyOf(node.srv.server, 'wf-writer'))[0]?.checksum === (await historyOf(followers[0]!.srv.server, 'wf-writer'))[0]?.checksum, { what: 'same head everywhere' })
      expectGapless(await historyOf(node.srv.server, 'wf-writer'))
    }
    const head = (await historyOf(followers[0]!.srv.server, 'wf-writer'))[0]!.version
    expect(await followers[1]!.srv.server.stateAt('wf-writer', head)).toEqual(second)
  })

  it('presence, change streams with Last-Event-ID and task claims work across servers', async () => {
    fresh()
    const [a, b, c] = await cluster()
    const one = stockClient(a!.srv.url, 'wf-x')
    const two = stockClient(b!.srv.url, 'wf-x')
    await Promise.all([one.synced(), two.synced()])
    one.provider.awareness.setLocalStateField('user', { name: 'one' })
    await waitFor(() => Array.from(two.provider.awareness.getStates().values()).some(s => s.user?.name === 'one'), { what: 'presence crosses servers' })

    const writer = sdkAgent(a!.srv.url, 'wf-x', 'writer')
    await writer.whenSynced()
    writer.update(d => { d.n = 1 })
    await waitFor(async () => ((await b!.store.getMeta('wf-x'))?.head ?? 0) >= 1, { what: 'first version' })
    const sse = openSse(`http://127.0.0.1:${b!.srv.port}/v1/workflows/wf-x/events`)
    expect(await sse.status).toBe(200)
    writer.update(d => { d.n = 2 })
    await waitFor(() => sse.events.some(e => e.event === 'change' && JSON.parse(e.data).changes.some((op: { path: string, value?: unknown }) => op.path === '/n' && op.value === 2)), { what: 'SSE on b sees a write on a' })
    const lastId = sse.events.filter(e => e.event === 'change').at(-1)!.id!
    sse.close()
    writer.update(d => { d.n = 3 })
    writer.update(d => { d.m = 3 })
    await waitFor(async () => ((await c!.store.getMeta('wf-x'))?.head ?? 0) >= Number(lastId) + 1, { what: 'more versions' })
    const resumed = openSse(`http://127.0.0.1:${c!.srv.port}/v1/workflows/wf-x/events`, { 'last-event-id': lastId })
    await waitFor(() => resumed.events.filter(e => e.event === 'change').some(e => JSON.parse(e.data).changes.some((op: { path: string }) => op.path === '/m')), { what: 'resume on c' })
    const ids = resumed.events.filter(e => e.event === 'change').map(e => Number(e.id))
    expect(ids[0]).toBe(Number(lastId) + 1)
    expect(new Set(ids).size).toBe(ids.length)
    resumed.close()

    // 30 tasks, 6 workers on 3 servers claiming at once: each task claimed exactly once.
    for (let i = 0; i < 30; i++) writer.tasks.push({ title: `t${i}` }, { kind: 'queue' })
    const workers = [a!, b!, c!].flatMap((node, i) => [0, 1].map(j => sdkAgent(node.srv.url, 'wf-x', `worker-${i}-${j}`)))
    await Promise.all(workers.map(w => w.whenSynced()))
    await waitFor(() => workers.every(w => w.tasks.list().length === 30), { what: 'every worker sees the 30 tasks' })
    const claimed: string[] = []
    await Promise.all(workers.map(async w => {
      for (;;) {
        const task = await w.tasks.claim({ kind: 'queue' })
        if (task === null) return
        claimed.push(task.id)
      }
    }))
    expect(claimed.length).toBe(30)
    expect(new Set(claimed).size).toBe(30)
  })

  it('a server receives from the bus only the workflows it holds or watches: nothing while idle, a workflow once a change stream on it is open, every workflow once its list feed is', async () => {
    fresh()
    const [a, b, c] = await cluster(3)
    const bBase = `http://127.0.0.1:${b!.srv.port}`
    // The writer's server loads the workflow first, so a writes it and c receives over the bus.
    const writer = sdkAgent(a!.srv.url, 'wf-skip', 'writer')
    await writer.whenSynced()
    const watcher = stockClient(c!.srv.url, 'wf-skip')
    await watcher.synced()
    writer.update(d => { d.n = 1 })
    // c holds the workflow and receives the version over the bus; b holds nothing and reads nothing.
    await waitFor(() => watcher.doc.getMap('state').get('n') === 1, { what: 'c receives the version' })
    expect(await metricOf(`http://127.0.0.1:${c!.srv.port}`, 'accord_bus_versions_received_total')).toBeGreaterThanOrEqual(1)
    expect(await metricOf(bBase, 'accord_workflows_loaded')).toBe(0)
    expect(await metricOf(bBase, 'accord_bus_versions_received_total')).toBe(0)
    expect(await metricOf(bBase, 'accord_bus_versions_skipped_total')).toBe(0)
    // A change stream on b for the workflow: b now receives its versions, live.
    const changes = openSse(`${bBase}/v1/workflows/wf-skip/events`)
    expect(await changes.status).toBe(200)
    writer.update(d => { d.n = 2 })
    await waitFor(() => changes.events.some(e => e.event === 'change' && JSON.parse(e.data).changes.some((op: { path: string, value?: unknown }) => op.path === '/n' && op.value === 2)), { what: 'a change stream on b sees the write on a' })
    expect(await metricOf(bBase, 'accord_bus_versions_received_total')).toBeGreaterThanOrEqual(1)
    expect(await metricOf(bBase, 'accord_workflows_loaded')).toBe(0)
    changes.close()
    // The list feed on b: every workflow's versions, here another workflow's.
    const feed = openSse(`${bBase}/v1/watch/workflows`)
    expect(await feed.status).toBe(200)
    const other = sdkAgent(a!.srv.url, 'wf-listed', 'writer')
    await other.whenSynced()
    other.update(d => { d.n = 1 })
    await waitFor(() => feed.events.some(e => e.event === 'workflow' && JSON.parse(e.data).workflowId === 'wf-listed'), { what: "b's list feed sees a write on a" })
    feed.close()
  })

  it('the writer reads no bus partition for a workflow it writes; a server that follows reads one, and the reads move with the lease', async () => {
    fresh()
    const [a, b] = await cluster(2)
    const base = (node: Node): string => `http://127.0.0.1:${node.srv.port}`
    const partitions = (node: Node): Promise<number> => metricOf(base(node), 'accord_bus_partitions_read')
    const onA = sdkAgent(a!.srv.url, 'wf-own', 'on-a')
    await onA.whenSynced()
    const [idA, idB] = await Promise.all([serverIdOf(base(a!)), serverIdOf(base(b!))])
    expect(await writerOf(prefix, 'wf-own')).toBe(idA)
    expect(await partitions(a!)).toBe(0)
    const onB = sdkAgent(b!.srv.url, 'wf-own', 'on-b')
    await onB.whenSynced()
    expect(await partitions(b!)).toBe(1)
    onA.update(d => { d.a = 1 })
    onB.update(d => { d.b = 1 })
    await waitForConvergence([() => onA.state, () => onB.state])
    expect(await metricOf(base(b!), 'accord_bus_versions_received_total')).toBeGreaterThanOrEqual(1)
    expect(await partitions(a!)).toBe(0)

    // Another server takes a's lease (as after a pause longer than the lease): a reads the bus
    // again, and stops once it writes again.
    const redis = new Redis(REDIS_URL)
    try {
      await redis.set(`${prefix}writer:wf-own`, 'elsewhere', 'PX', 2500)
    } finally {
      await redis.quit()
    }
    await waitFor(async () => await partitions(a!) === 1, { what: 'a reads the bus once its lease is gone' })
    onA.update(d => { d.a = 2 })
    await waitForConvergence([() => onA.state, () => onB.state])
    expect(onB.state).toMatchObject({ a: 2, b: 1 })
    const holder = await writerOf(prefix, 'wf-own')
    const [writer, follower] = holder === idA ? [a!, b!] : [b!, a!]
    expect([idA, idB]).toContain(holder)
    await waitFor(async () => await partitions(writer) === 0, { what: 'the new writer stops reading' })
    expect(await partitions(follower)).toBe(1)

    // The follower's clients only: when the writer leaves, the follower takes over and stops reading.
    const left = writer === a ? onA : onB
    const stays = writer === a ? onB : onA
    left.close()
    await writer.stop()
    stays.update(d => { d.last = true })
    await waitFor(async () => await writerOf(prefix, 'wf-own') === (writer === a ? idB : idA), { what: 'the follower takes the lease' })
    await waitFor(async () => await partitions(follower) === 0, { what: 'and reads no partition' })
    expect((await api(base(follower), 'GET', '/v1/workflows/wf-own')).body.state).toMatchObject({ a: 2, b: 1, last: true })
    expectGapless(await historyOf(follower.srv.server, 'wf-own'))
  })

  it('the lease goes where the clients are: a writer left without clients hands it to the server that forwards for its own, and it stays there while that server has clients', async () => {
    fresh()
    // A long grace period keeps a workflow loaded after its last client left, as between a
    // balancer's failover and failback.
    const a = await startNode({ graceMs: 60_000 })
    const b = await startNode({ graceMs: 60_000 })
    const base = (node: Node): string => `http://127.0.0.1:${node.srv.port}`
    const metric = (node: Node, name: string): Promise<number> => metricOf(base(node), name)
    const [idA, idB] = await Promise.all([serverIdOf(base(a)), serverIdOf(base(b))])
    const onB = stockClient(b.srv.url, 'wf-move')
    await onB.synced()
    expect(await writerOf(prefix, 'wf-move')).toBe(idB)
    const onA = sdkAgent(a.srv.url, 'wf-move', 'on-a')
    await onA.whenSynced()

    // Both servers have clients: a forwards to b, and b keeps the lease.
    onA.update(d => { d.a = 1 })
    onB.doc.getMap('state').set('b', 1)
    await waitForConvergence([() => onA.state, () => onB.json()])
    expect(await metric(a, 'accord_forwarded_updates_total')).toBeGreaterThan(0)
    expect(await writerOf(prefix, 'wf-move')).toBe(idB)

    // b's client leaves; b still holds the workflow. a's next forward takes the lease to a.
    onB.close()
    await waitFor(async () => await metric(b, 'accord_connections') === 0, { what: 'b without clients' })
    onA.update(d => { d.a = 2 })
    await waitFor(async () => await writerOf(prefix, 'wf-move') === idA, { what: 'the lease moves to a' })
    expect(await metric(b, 'accord_writer_handoffs_total')).toBe(1)
    await waitFor(async () => await metric(a, 'accord_bus_partitions_read') === 0, { what: 'a writes and reads no partition' })
    expect(await metric(b, 'accord_bus_partitions_read')).toBe(1)

    // From now on a stores its clients' writes itself: nothing more is forwarded.
    const forwarded = await metric(a, 'accord_forwarded_updates_total')
    for (let i = 0; i < 10; i++) onA.update(d => { d[`k${i}`] = i })
    await waitFor(async () => ((await api(base(b), 'GET', '/v1/workflows/wf-move')).body.state as Record<string, unknown>).k9 === 9, { what: 'stored and seen by b' })
    expect(await metric(a, 'accord_forwarded_updates_total')).toBe(forwarded)

    // A client on b again: b forwards to a, which has clients, so the lease stays with a.
    const again = stockClient(b.srv.url, 'wf-move')
    await again.synced()
    again.doc.getMap('state').set('again', true)
    const final = await waitForConvergence([() => onA.state, () => again.json()])
    expect(final).toMatchObject({ a: 2, b: 1, k9: 9, again: true })
    expect(await writerOf(prefix, 'wf-move')).toBe(idA)
    expect(await metric(a, 'accord_writer_handoffs_total')).toBe(0)
    for (const node of [a, b]) expect(await metric(node, 'accord_writer_races_total')).toBe(0)
    const history = await historyOf(a.srv.server, 'wf-move')
    expectGapless(history)
    expect(await b.srv.server.stateAt('wf-move', history[0]!.version)).toEqual(final)
  })

  it('a server that misses every bus message still converges from the store', async () => {
    fresh()
    const [a] = await cluster(1)
    const deaf = await startNode({ prefix: `${prefix}elsewhere:` }) // another bus: it hears nothing
    const writer = sdkAgent(a!.srv.url, 'wf-deaf', 'writer')
    const reader = sdkAgent(deaf.srv.url, 'wf-deaf', 'reader')
    await Promise.all([writer.whenSynced(), reader.whenSynced()])
    for (let i = 0; i < 10; i++) writer.update(d => { d[`k${i}`] = i })
    await waitFor(() => Object.keys(reader.state).length === 10, { what: 'reconciled from the store' })
    reader.update(d => { d.back = true })
    await waitFor(() => (writer.state as Record<string, unknown>).back === true, { what: 'and back' })
    expectGapless(await historyOf(a!.srv.server, 'wf-deaf'))
    expect((await api(`http://127.0.0.1:${deaf.srv.port}`, 'GET', '/v1/workflows/wf-deaf')).body.state).toEqual(writer.state)
  })
})
