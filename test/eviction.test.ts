import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { closeClients, sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { openLevelStore } from '../src/store/level.ts'
import { key } from '../src/store/keys.ts'
import { Level } from 'level'

const { start } = useServers()

describe('loading and eviction', () => {
  it('200 workflows opened and closed: none stays in memory, and each kept its edit', async () => {
    const srv = await start({ evictionGraceMs: 0 })
    const url = srv.url
    for (let batch = 0; batch < 4; batch++) {
      const agents = Array.from({ length: 50 }, (_, i) => sdkAgent(url, `wf-many-${batch * 50 + i}`, 'agent'))
      await Promise.all(agents.map(a => a.whenSynced()))
      agents.forEach((a, i) => a.update(d => { d.n = batch * 50 + i }))
      await waitFor(async () => {
        const metas = await srv.server.store.listWorkflows()
        return metas.length === (batch + 1) * 50
      }, { what: 'all edits stored' })
      await closeClients()
    }
    await waitFor(() => srv.server.loadedWorkflows().length === 0, { what: 'every workflow evicted' })
    expect(srv.server.connectionCount()).toBe(0)

    const check = stockClient(url, 'wf-many-137')
    await check.synced()
    expect(check.json()).toEqual({ n: 137 })
  })

  it('keeps a workflow loaded during the grace period and reuses it when a client returns', async () => {
    const srv = await start({ evictionGraceMs: 60_000 })
    const a = sdkAgent(srv.url, 'wf-grace', 'agent')
    await a.whenSynced()
    a.update(d => { d.x = 1 })
    await closeClients()
    await waitFor(() => srv.server.connectionCount() === 0)
    expect(srv.server.loadedWorkflows()).toEqual(['wf-grace'])
    const b = stockClient(srv.url, 'wf-grace')
    await b.synced()
    expect(b.json()).toEqual({ x: 1 })
  })

  it('a workflow whose stored data is corrupt is refused with 4500 and not kept in memory; others keep working', async () => {
    const first = await start()
    const a = sdkAgent(first.url, 'wf-corrupt', 'agent')
    await a.whenSynced()
    a.update(d => { d.x = 1 })
    await waitFor(async () => (await first.server.store.countLog('wf-corrupt')) === 1)
    await closeClients()
    await first.stop()

    // Flip one byte of the stored update, behind the store's back.
    const db = new Level<string, Uint8Array>(first.dataDir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    const logKey = key('wf-corrupt', 'log', 1)
    const value = Uint8Array.from(await db.get(logKey) as Uint8Array)
    value[value.length - 1] ^= 0xff
    await db.put(logKey, value)
    await db.close()
    const store = await openLevelStore(first.dataDir)
    await expect(store.load('wf-corrupt')).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
    await store.close()

    const srv = await start({ dataDir: first.dataDir })
    const bad = stockClient(srv.url, 'wf-corrupt')
    const closed = await new Promise<{ code: number, reason: string }>(resolve => {
      bad.provider.on('connection-close', (event: any) => { if (event !== null) resolve({ code: event.code, reason: event.reason }) })
    })
    expect(closed.code).toBe(4500)
    expect(closed.reason).toMatch(/checksum mismatch/)
    bad.close()
    await waitFor(() => srv.server.loadedWorkflows().length === 0, { what: 'failed workflow released' })

    const good = sdkAgent(srv.url, 'wf-fine', 'agent')
    await good.whenSynced()
    good.update(d => { d.ok = true })
    const reader = stockClient(srv.url, 'wf-fine')
    await waitFor(() => (reader.json() as any).ok === true, { what: 'other workflow keeps working' })
  })
})
