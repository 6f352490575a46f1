/**
 * Writer affinity (issue #20): three servers on PostgreSQL + Redis behind a real nginx running
 * the shipped config (examples/compose/nginx.conf), which routes by workflow id. Every client of
 * a workflow — SDK agents, stock y-websocket clients, REST writes — reaches the server that
 * holds its writer lease, so no update is forwarded; when that server leaves, the next one on
 * the ring takes its clients and its lease, and nothing is lost; when it comes back, the lease
 * follows the clients back to it (handed off by the server they left), and forwarding stops.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { portIsFree, startServer, type TestServer } from './helpers/server.ts'
import { closeClients, sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { api } from './helpers/http.ts'
import { expectGapless, historyOf } from './helpers/history.ts'
import { POSTGRES_URL, REDIS_URL, dropServiceData, metricOf, serverIdOf, servicesMissing, uniqueName, writerOf } from './helpers/services.ts'
import { nginxMissing, startNginx, type Nginx } from './helpers/nginx.ts'
import { openPostgresStore } from '../server/store/postgres.ts'
import type { Store } from '../src/store/store.ts'

const missing = (await servicesMissing()) ?? nginxMissing()
if (missing !== null) console.log(`writer affinity tests skipped: ${missing}`)

interface Node { srv: TestServer, store: Store, base: string, id: string, stopped: boolean }

describe.skipIf(missing !== null)('writer affinity: nginx routes by workflow id', () => {
  const schema = uniqueName('affinity')
  const prefix = `${schema}:`
  const nodes: Node[] = []
  let nginx: Nginx | null = null

  afterEach(async () => {
    await closeClients()
    await nginx?.stop()
    for (const n of nodes.splice(0)) {
      if (!n.stopped) await n.srv.stop()
      await n.store.close()
    }
    await dropServiceData({ schema, redisPrefix: prefix })
  })

  const startNode = async (port?: number): Promise<Node> => {
    const store = await openPostgresStore(POSTGRES_URL, { schema })
    const srv = await startServer({ store, port, evictionGraceMs: 200, cluster: { redisUrl: REDIS_URL, prefix, reconcileMs: 300, forwardTimeoutMs: 500, writerLeaseMs: 1000 } })
    const base = `http://127.0.0.1:${srv.port}`
    const node: Node = { srv, store, base, id: await serverIdOf(base), stopped: false }
    nodes.push(node)
    return node
  }

  const forwarded = async (): Promise<number> => {
    let n = 0
    for (const node of nodes) if (!node.stopped) n += await metricOf(node.base, 'accord_forwarded_updates_total')
    return n
  }

  it('every client of a workflow meets its writer: nothing is forwarded, and a leaving server hands its workflows on without loss', async () => {
    for (let i = 0; i < 3; i++) await startNode() // one at a time: the first runs the migrations
    nginx = await startNginx(nodes.map(n => n.srv.port))
    const ids = ['wf-a', 'wf-b', 'wf-c', 'wf-d', 'wf-e', 'wf-f']
    const agents = ids.flatMap(id => [0, 1, 2].map(j => ({ id, handle: sdkAgent(nginx!.url, id, `${id}-agent-${j}`) })))
    const stocks = ids.map(id => ({ id, client: stockClient(nginx!.url, id) }))
    await Promise.all([...agents.map(a => a.handle.whenSynced()), ...stocks.map(s => s.client.synced())])
    for (let round = 0; round < 20; round++) {
      for (const { handle } of agents) handle.update(d => { d[handle.agentId] = round })
      if (round % 5 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    for (const { client } of stocks) client.doc.getMap('state').set('stock', 1)
    const patched = await api(nginx.http, 'PATCH', '/v1/workflows/wf-a', {
      raw: JSON.stringify([{ op: 'add', path: '/rest', value: true }]),
      headers: { 'content-type': 'application/json-patch+json' }
    })
    expect(patched.status).toBe(200)
    for (const id of ids) {
      const mine = [...agents.filter(a => a.id === id).map(a => () => a.handle.state), ...stocks.filter(s => s.id === id).map(s => () => s.client.json())]
      const final = await waitForConvergence(mine, 30_000) as Record<string, unknown>
      for (let j = 0; j < 3; j++) expect(final[`${id}-agent-${j}`]).toBe(19)
      expect(final.stock).toBe(1)
    }
    expect(await forwarded()).toBe(0)
    // Each workflow is loaded on exactly one server, and that server holds its lease.
    for (const id of ids) {
      const holders = nodes.filter(n => n.srv.server.loadedWorkflows().includes(id))
      expect(holders.map(h => h.id), `${id} is loaded on one server`).toHaveLength(1)
      expect(await writerOf(prefix, id)).toBe(holders[0]!.id)
    }

    // The server of wf-a leaves: its clients reconnect through nginx to the next server on the
    // ring, which takes the lease once the old one released it; every write is still there.
    const leaving = nodes.find(n => n.srv.server.loadedWorkflows().includes('wf-a'))!
    const moved = ids.filter(id => leaving.srv.server.loadedWorkflows().includes(id))
    await leaving.srv.stop()
    leaving.stopped = true
    for (const { id, handle } of agents) if (moved.includes(id)) handle.update(d => { d[handle.agentId] = 100 })
    for (const id of moved) {
      const mine = agents.filter(a => a.id === id).map(a => () => a.handle.state)
      const final = await waitForConvergence(mine, 30_000) as Record<string, unknown>
      for (let j = 0; j < 3; j++) expect(final[`${id}-agent-${j}`]).toBe(100)
      expect(final.stock).toBe(1)
      const writer = await waitFor(() => writerOf(prefix, id), { what: `a new writer of ${id}` })
      expect(writer).not.toBe(leaving.id)
      const node = nodes.find(n => n.id === writer)!
      await waitFor(async () => (await node.srv.server.stateAt(id, (await node.srv.server.history(id, { limit: 1 }))[0]!.version) as Record<string, unknown>)[`${id}-agent-2`] === 100, { what: `the writes to ${id} stored` })
      expectGapless(await historyOf(node.srv.server, id))
    }
    expect(await forwarded()).toBe(0)

    // It comes back on its port. Once nginx routes to it again (it waits out fail_timeout), new
    // clients of its workflows reach it while the lease is still where the old clients went.
    await waitFor(() => portIsFree(leaving.srv.port), { what: 'the port free again' })
    const back = await startNode(leaving.srv.port)
    for (const id of moved) {
      await waitFor(async () => {
        await api(nginx!.http, 'GET', `/v1/workflows/${id}`)
        return back.srv.server.loadedWorkflows().includes(id)
      }, { timeoutMs: 15_000, intervalMs: 100, what: `nginx routing ${id} to the returned server` })
    }
    const returning = moved.map(id => ({ id, handle: sdkAgent(nginx!.url, id, `${id}-back`) }))
    await Promise.all(returning.map(a => a.handle.whenSynced()))
    for (const { id } of returning) expect(back.srv.server.loadedWorkflows()).toContain(id)
    // The old clients leave; the returned server's clients write, and the lease follows them.
    for (const { id, handle } of agents) if (moved.includes(id)) handle.close()
    for (const { id, client } of stocks) if (moved.includes(id)) client.close()
    for (const { handle } of returning) handle.update(d => { d.back = 1 })
    for (const { id } of returning) await waitFor(async () => await writerOf(prefix, id) === back.id, { what: `the lease of ${id} back with its clients` })
    const before = await forwarded()
    for (const { handle } of returning) handle.update(d => { d.back = 2 })
    for (const { id, handle } of returning) {
      await waitFor(async () => ((await api(nginx!.http, 'GET', `/v1/workflows/${id}`)).body.state as Record<string, unknown>).back === 2, { what: `${id} stored by its writer` })
      expect(handle.state).toMatchObject({ [`${id}-agent-2`]: 100, stock: 1, back: 2 })
      expectGapless(await historyOf(back.srv.server, id))
    }
    expect(await forwarded()).toBe(before)
  })
})
