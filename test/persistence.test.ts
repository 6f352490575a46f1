import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { closeClients, sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'

const { start } = useServers()

describe('persistence', () => {
  it('a restarted server on the same data dir serves byte-identical JSON', async () => {
    const first = await start()
    const a = sdkAgent(first.url, 'wf-persist', 'agent-a')
    const b = sdkAgent(first.url, 'wf-persist', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    for (let i = 0; i < 30; i++) {
      a.update(d => { d[`a${i}`] = { n: i, tags: ['x', i] } })
      b.update(d => { d.list = [...((d.list as number[]) ?? []), i] })
    }
    a.update(d => { delete d.a3 })
    const before = JSON.stringify(await waitForConvergence([() => a.state, () => b.state]))
    await closeClients()
    await first.stop()

    const second = await start({ dataDir: first.dataDir })
    const reader = stockClient(second.url, 'wf-persist')
    await reader.synced()
    expect(JSON.stringify(reader.json())).toBe(before)
  })

  it('an edit is durable once a peer has seen it, even if the server is closed right away', async () => {
    const first = await start()
    const a = sdkAgent(first.url, 'wf-durable', 'agent-a')
    const b = sdkAgent(first.url, 'wf-durable', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update(d => { d.seen = 'yes' })
    await waitFor(() => b.state.seen === 'yes', { what: 'b sees the edit' })
    await first.stop()
    const second = await start({ dataDir: first.dataDir })
    const reader = stockClient(second.url, 'wf-durable')
    await reader.synced()
    expect(reader.json()).toEqual({ seen: 'yes' })
  })

  it('compacts: keyframes bound the replay, old versions move to the archive, the state is unchanged after a restart', async () => {
    const opts = { keyframeEvery: 20, retention: { maxVersions: 20 } }
    const first = await start(opts)
    const a = sdkAgent(first.url, 'wf-compact', 'agent-a')
    await a.whenSynced()
    const head = async (): Promise<number> => (await first.server.store.getMeta('wf-compact'))?.head ?? 0
    for (let i = 0; i < 95; i++) {
      // Wait for each write, so each update is its own version.
      a.update(d => { d.counter = i; d[`k${i % 7}`] = i })
      await waitFor(async () => (await head()) === i + 1, { what: `update ${i} persisted` })
    }
    await waitFor(async () => (await first.server.store.archivedThrough('wf-compact')) === 60, { what: 'old versions archived' })
    const stored = await first.server.store.load('wf-compact')
    expect(stored.keyframe?.version).toBe(80)
    expect(stored.entries.map(e => e.version)).toEqual([81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95])
    // Hot log: versions 61..95; everything older lives in compressed archive chunks.
    expect(await first.server.store.countLog('wf-compact')).toBe(35)

    const observer = stockClient(first.url, 'wf-compact')
    await waitForConvergence([() => a.state, observer.json])
    const before = JSON.stringify(a.state)
    expect(JSON.parse(before).counter).toBe(94)
    await closeClients()
    await first.stop()

    const second = await start({ dataDir: first.dataDir, ...opts })
    const reader = stockClient(second.url, 'wf-compact')
    await reader.synced()
    expect(JSON.stringify(reader.json())).toBe(before)
  })
})
