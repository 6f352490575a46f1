import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { tempDir } from './helpers/server.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { kill, runChild } from './helpers/child.ts'

const { start, restart } = useServers()

describe('offline Node agents', () => {
  it('start with the server down, edit, exit, start again and see their edits; sync both ways when it returns', async () => {
    const srv = await start()
    const seeded = sdkAgent(srv.url, 'wf-off', 'seed')
    await seeded.whenSynced()
    seeded.update(d => { d.fromServer = 'before the outage' })
    await waitFor(async () => (await srv.server.store.getMeta('wf-off'))?.head === 1)
    await seeded.close()

    // A first run while the server is up gets the server's state into the local store.
    const dirA = await tempDir()
    const first = sdkAgent(srv.url, 'wf-off', 'agent-a', { persistence: dirA })
    await first.whenSynced()
    await first.whenPersisted()
    await first.close()
    await srv.stop()

    // Offline: start, edit, exit, start again.
    const offline = sdkAgent(srv.url, 'wf-off', 'agent-a', { persistence: dirA, recovery: { baseMs: 20, capMs: 100 } })
    await offline.whenLoaded()
    expect(offline.state).toEqual({ fromServer: 'before the outage' })
    offline.update(d => { d.offlineA = 1 })
    await offline.close()
    const again = sdkAgent(srv.url, 'wf-off', 'agent-a', { persistence: dirA, recovery: { baseMs: 20, capMs: 100 } })
    await again.whenLoaded()
    expect(again.state).toEqual({ fromServer: 'before the outage', offlineA: 1 })
    again.update(d => { d.offlineA2 = 2 })

    // A second agent with its own store, also offline.
    const b = sdkAgent(srv.url, 'wf-off', 'agent-b', { persistence: await tempDir(), recovery: { baseMs: 20, capMs: 100 } })
    await b.whenLoaded()
    b.update(d => { d.offlineB = true })

    const back = await restart(srv)
    const online = sdkAgent(back.url, 'wf-off', 'online')
    await online.whenSynced()
    online.update(d => { d.whileTheyWereAway = 'server side' })
    const final = await waitForConvergence([() => again.state, () => b.state, () => online.state])
    expect(final).toEqual({ fromServer: 'before the outage', offlineA: 1, offlineA2: 2, offlineB: true, whileTheyWereAway: 'server side' })
  })

  it('an agent killed with SIGKILL after editing offline loses none of its edits on restart', async () => {
    const srv = await start()
    await srv.stop()
    const dir = await tempDir()
    const { child, first } = await runChild('test/fixtures/offline-writer.ts', [srv.url, 'wf-kill', 'doomed', dir, '25'])
    expect(first).toEqual({ persisted: 25 })
    await kill(child)

    const revived = sdkAgent(srv.url, 'wf-kill', 'doomed', { persistence: dir, recovery: { baseMs: 20, capMs: 100 } })
    await revived.whenLoaded()
    expect(Object.keys(revived.state)).toHaveLength(25)
    const back = await restart(srv)
    const reader = sdkAgent(back.url, 'wf-kill', 'reader')
    await waitFor(() => Object.keys(reader.state).length === 25, { what: 'the killed agent\'s edits reach the server' })
    expect(reader.state['doomed-24']).toBe(24)
  })
})
