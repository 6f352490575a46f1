/**
 * Limits: workflows in memory (LRU eviction of idle ones, refusal when all are in use),
 * connections per workflow and update rate per connection, each with a clear error when hit.
 */
import { WebSocket } from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { api } from './helpers/http.ts'

const { start } = useServers()

interface Raw { ws: WebSocket, closed: Promise<{ code: number, reason: string }>, opened: Promise<void> }

const raw = (url: string, id: string): Raw => {
  const ws = new WebSocket(`${url}/${id}`)
  const closed = new Promise<{ code: number, reason: string }>(resolve => {
    ws.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
  })
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('error', reject)
  })
  return { ws, closed, opened }
}

const updateMessage = (n: number): Uint8Array => {
  const doc = new Y.Doc()
  doc.getMap('state').set(`k${n}`, n)
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, 0)
  syncProtocol.writeUpdate(enc, Y.encodeStateAsUpdate(doc))
  return encoding.toUint8Array(enc)
}

describe('limits', () => {
  it('keeps at most maxLoadedWorkflows in memory: evicts the least recently used idle one, refuses when all are busy', async () => {
    const srv = await start({ maxLoadedWorkflows: 2, evictionGraceMs: 60_000 })
    const a = sdkAgent(srv.url, 'lim-a', 'agent')
    const b = sdkAgent(srv.url, 'lim-b', 'agent')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update(d => { d.a = 1 })
    await waitFor(async () => (await srv.server.store.getMeta('lim-a'))?.head === 1, { what: 'a stored' })

    const refused = raw(srv.url, 'lim-c')
    const closed = await refused.closed
    expect(closed.code).toBe(4503)
    expect(closed.reason).toMatch(/too many workflows in memory: .*limit of 2/)
    const http = await api(`http://127.0.0.1:${srv.port}`, 'POST', '/v1/workflows', { body: { workflowId: 'lim-c', state: {} } })
    expect(http.status).toBe(429)
    expect(http.body.error.code).toBe('LIMIT_EXCEEDED')
    expect(srv.server.loadedWorkflows().sort()).toEqual(['lim-a', 'lim-b'])

    // Both go idle (a first); a third workflow pushes out the least recently used: a.
    await a.close()
    await waitFor(() => srv.server.connectionCount() === 1, { what: 'a disconnected' })
    await b.close()
    await waitFor(() => srv.server.connectionCount() === 0, { what: 'b disconnected' })
    expect(srv.server.loadedWorkflows().sort()).toEqual(['lim-a', 'lim-b'])
    const c = sdkAgent(srv.url, 'lim-c', 'agent')
    await c.whenSynced()
    await waitFor(() => srv.server.loadedWorkflows().sort().join() === 'lim-b,lim-c', { what: 'lim-a evicted' })
    await c.close()
    await waitFor(() => srv.server.connectionCount() === 0, { what: 'c disconnected' })
    const again = stockClient(srv.url, 'lim-a')
    await again.synced()
    expect(again.json()).toEqual({ a: 1 })
  })

  it('refuses connections beyond maxConnectionsPerWorkflow until one leaves', async () => {
    const srv = await start({ maxConnectionsPerWorkflow: 2 })
    const one = raw(srv.url, 'lim-conn')
    const two = raw(srv.url, 'lim-conn')
    await Promise.all([one.opened, two.opened])
    const other = raw(srv.url, 'lim-other') // other workflows are not affected
    await other.opened
    const three = await raw(srv.url, 'lim-conn').closed
    expect(three.code).toBe(4503)
    expect(three.reason).toMatch(/too many connections to this workflow \(limit 2\)/)
    one.ws.close()
    await one.closed
    await waitFor(() => srv.server.connectionCount() === 2, { what: 'one left' })
    const four = raw(srv.url, 'lim-conn')
    await four.opened
    for (const r of [two, other, four]) r.ws.close()
  })

  it('closes a connection that floods updates with 4429; others keep working', async () => {
    const srv = await start({ rateLimit: { perSecond: 20, burst: 20 } })
    const honest = sdkAgent(srv.url, 'lim-rate', 'honest')
    await honest.whenSynced()
    const flood = raw(srv.url, 'lim-rate')
    await flood.opened
    for (let i = 0; i < 200; i++) flood.ws.send(updateMessage(i))
    const closed = await flood.closed
    expect(closed.code).toBe(4429)
    expect(closed.reason).toMatch(/update rate limit exceeded: more than 20 updates\/s \(burst 20\)/)
    honest.update(d => { d.still = 'fine' })
    const reader = stockClient(srv.url, 'lim-rate')
    await waitFor(() => (reader.json() as Record<string, unknown>).still === 'fine', { what: 'honest edit arrives' })
    expect(srv.server.connectionCount()).toBe(2)
  })
})
