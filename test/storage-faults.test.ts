import { afterEach, describe, expect, it } from 'vitest'
import { startServer, removeTempDirs, tempDir, type TestServer } from './helpers/server.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { openLevelStore } from '../src/store/level.ts'
import type { Store } from '../src/store/store.ts'

let srv: TestServer | null = null
let real: Store | null = null

afterEach(async () => {
  await closeClients()
  await srv?.stop()
  await real?.close()
  srv = null
  real = null
  await removeTempDirs()
})

describe('storage faults', () => {
  it('a failing write is never acknowledged: peers are closed with 4500, and everything syncs once the fault is gone', async () => {
    real = await openLevelStore(await tempDir())
    const base = real
    let failing = false
    const injected = (): Promise<never> => Promise.reject(new Error('No space left on device (injected)'))
    // A fault at the storage boundary: the real LevelDB store, with writes failing on demand.
    const store: Store = {
      ...base,
      commit: (...args) => failing ? injected() : base.commit(...args)
    }
    srv = await startServer({ store, writeAttempts: 2 })
    const a = sdkAgent(srv.url, 'wf-fault', 'agent-a', { maxBackoffTime: 100 })
    const b = sdkAgent(srv.url, 'wf-fault', 'agent-b', { maxBackoffTime: 100 })
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update(d => { d.ok = 1 })
    await waitFor(() => b.state.ok === 1)

    const closes: number[] = []
    b.provider.on('connection-close', (event: any) => { if (event !== null) closes.push(event.code) })
    failing = true
    a.update(d => { d.lost = 'never' })
    await waitFor(() => closes.includes(4500), { what: 'b disconnected with 4500' })
    await waitFor(() => srv!.logs.some(l => l.msg === 'workflow stopped: storage write failed'))
    expect(b.state.lost).toBeUndefined()
    expect((await base.load('wf-fault')).entries.length).toBe(1)

    failing = false
    await waitFor(() => b.state.lost === 'never', { what: 'the edit arrives once storage works again' })
    const stored = await base.load('wf-fault')
    expect(stored.entries.length).toBeGreaterThan(1)
    expect(a.state).toEqual({ ok: 1, lost: 'never' })
  })
})
