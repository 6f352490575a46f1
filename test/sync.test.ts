import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'

const { start } = useServers()

describe('sync between SDK agents and a stock y-websocket client', () => {
  it('concurrent edits from two SDK agents and a stock client converge to identical JSON', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-sync', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-sync', 'agent-b')
    const stock = stockClient(srv.url, 'wf-sync')
    await Promise.all([a.whenSynced(), b.whenSynced(), stock.synced()])

    a.update(d => { d.tasks = [{ id: 1, title: 'plan' }]; d.owner = 'a' })
    await waitFor(() => (b.state as any).tasks?.length === 1, { what: 'b sees the task list' })

    // Concurrent: nothing is exchanged between these three writes.
    a.update(d => { (d as any).tasks[0].status = 'doing'; d.a = 1 })
    b.update(d => { (d as any).tasks.push({ id: 2, title: 'work' }); d.b = 2 })
    stock.doc.transact(() => { stock.doc.getMap('state').set('stock', 'hello') })

    const final = await waitForConvergence([() => a.state, () => b.state, stock.json])
    expect(final).toMatchObject({
      owner: 'a', a: 1, b: 2, stock: 'hello',
      tasks: [{ id: 1, title: 'plan', status: 'doing' }, { id: 2, title: 'work' }]
    })
  })

  it('the same key written concurrently ends with one deterministic winner everywhere', async () => {
    const srv = await start()
    const agents = [0, 1, 2].map(i => sdkAgent(srv.url, 'wf-race', `agent-${i}`))
    await Promise.all(agents.map(a => a.whenSynced()))
    agents.forEach((a, i) => a.update(d => { d.winner = `agent-${i}` }))
    const final = await waitForConvergence(agents.map(a => () => a.state)) as { winner: string }
    expect(['agent-0', 'agent-1', 'agent-2']).toContain(final.winner)
  })

  it('a late joiner receives the full state, and awareness (presence) crosses clients', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-late', 'agent-a')
    await a.whenSynced()
    a.update(d => { d.items = Array.from({ length: 50 }, (_, i) => ({ i })) })
    const late = stockClient(srv.url, 'wf-late')
    await late.synced()
    await waitForConvergence([() => a.state, late.json])
    await waitFor(() => Array.from(late.provider.awareness.getStates().values())
      .some(s => (s as any).agent?.id === 'agent-a'), { what: 'presence of agent-a' })
  })

  it('closes a connection to an invalid workflow id with 4400 and a clear reason', async () => {
    const srv = await start()
    const ws = new WebSocket(`${srv.url}/bad%20id!`)
    const [code, reason] = await new Promise<[number, string]>(resolve => {
      ws.on('close', (c, r) => { resolve([c, r.toString()]) })
    })
    expect(code).toBe(4400)
    expect(reason).toMatch(/invalid workflow id/)
  })
})
