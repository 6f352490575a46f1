import { afterEach, describe, expect, it } from 'vitest'
import type { startServer } from './helpers/server.ts'
import { headOf, useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { autoCheckpoint, withCheckpoint, CheckpointRestoreError, type AutoCheckpoint } from '../src/client/checkpoints.ts'
import { AccordError, ClosedError } from '../src/model/errors.ts'
import type { HistoryApi } from '../src/client/history-api.ts'
import type { SnapshotRecord } from '../src/model/schema.ts'

const { start } = useServers()
// Registered after useServers, so it runs first: timers stop before their servers do.
const stops: Array<() => void> = []
afterEach(() => { for (const stop of stops.splice(0)) stop() })

/** Two SDK agents and a stock client on one workflow, synced, with a first stored state. */
const setup = async (id: string, serverOptions: Parameters<typeof startServer>[0] = {}) => {
  const srv = await start(serverOptions)
  const a = sdkAgent(srv.url, id, 'agent-a')
  const b = sdkAgent(srv.url, id, 'agent-b')
  const stock = stockClient(srv.url, id)
  await Promise.all([a.whenSynced(), b.whenSynced(), stock.synced()])
  a.update(d => { d.step = 1; d.items = ['x'] })
  await waitFor(async () => (await headOf(srv, id)) === 1, { what: 'first version stored' })
  return { srv, a, b, stock }
}

/** Records the snapshots an API creates. */
const spying = <A extends Pick<HistoryApi, 'createSnapshot'>>(api: A): A & { created: SnapshotRecord[], requested: Array<Parameters<HistoryApi['createSnapshot']>[0]> } => {
  const created: SnapshotRecord[] = []
  const requested: Array<Parameters<HistoryApi['createSnapshot']>[0]> = []
  return {
    ...api,
    created,
    requested,
    createSnapshot: async (o: Parameters<HistoryApi['createSnapshot']>[0]) => {
      requested.push(o)
      const record = await api.createSnapshot(o)
      created.push(record)
      return record
    }
  }
}

describe('withCheckpoint', () => {
  it('on success keeps the change, returns the result and deletes its pre_operation snapshot', async () => {
    const { srv, a, b, stock } = await setup('wf-cp-ok')
    const api = spying(a)
    const result = await withCheckpoint(api, async () => {
      a.update(d => { d.step = 2 })
      return 'done'
    }, { name: 'bump step', description: 'step 1 -> 2' })
    expect(result).toBe('done')
    expect(api.requested).toEqual([{ name: 'bump step', kind: 'pre_operation', description: 'step 1 -> 2' }])
    expect(api.created[0]).toMatchObject({ kind: 'pre_operation', version: 1, createdBy: 'agent-a' })
    expect(await a.listSnapshots()).toEqual([])
    expect(await waitForConvergence([() => a.state, () => b.state, stock.json])).toEqual({ step: 2, items: ['x'] })
    await waitFor(async () => (await headOf(srv, 'wf-cp-ok')) === 2)
    expect((await a.history({ limit: 1 }))[0]?.description).not.toMatch(/restored/)
    // A synchronous fn works too.
    expect(await withCheckpoint(a, () => 42)).toBe(42)
    expect(await a.listSnapshots()).toEqual([])
  })

  it('when fn throws, reverts its changes on every peer, deletes the snapshot and rethrows the original error', async () => {
    const { srv, a, b, stock } = await setup('wf-cp-fail')
    const boom = new Error('tool call failed')
    const run = withCheckpoint(a, async () => {
      a.update(d => { d.step = 99; (d.items as string[]).push('half-done'); d.junk = true })
      // The partial change really reached the other peers before the failure.
      await waitFor(() => b.state.step === 99 && (stock.json() as any).junk === true, { what: 'partial change seen by peers' })
      throw boom
    }, { name: 'risky' })
    await expect(run).rejects.toBe(boom)
    expect(await waitForConvergence([() => a.state, () => b.state, stock.json])).toEqual({ step: 1, items: ['x'] })
    expect(await a.listSnapshots()).toEqual([])
    const [latest] = await a.history({ limit: 1 })
    expect(latest).toMatchObject({ author: 'agent-a', description: expect.stringMatching(/^restored from snapshot "risky" \(version 1\)/) })
    expect(await srv.server.stateAt('wf-cp-fail', latest!.version)).toEqual({ step: 1, items: ['x'] })
    // Later edits are normal edits.
    b.update(d => { d.after = true })
    expect(await waitForConvergence([() => a.state, () => b.state, stock.json])).toEqual({ step: 1, items: ['x'], after: true })
  })

  it('when the restore fails too, throws an AccordError caused by the original error and keeps the snapshot', async () => {
    const { a } = await setup('wf-cp-restore-fails')
    const boom = new Error('original failure')
    const api = { ...spying(a), restore: async () => { throw new AccordError('TIMEOUT', 'reply to restore did not happen within 1 ms') } }
    const err = await withCheckpoint(api, () => { throw boom }, { name: 'keep me' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CheckpointRestoreError)
    expect(err).toBeInstanceOf(AccordError)
    const e = err as CheckpointRestoreError
    expect(e.cause).toBe(boom)
    expect(e.code).toBe('TIMEOUT')
    expect(e.message).toMatch(/original failure/)
    expect(e.message).toMatch(/restoring checkpoint "keep me"/)
    expect(e.message).toMatch(/original error is this error's cause/)
    expect((await a.listSnapshots()).map(s => s.id)).toEqual([api.created[0]?.id])
  })

  it('does not run fn when the snapshot cannot be taken; a failed cleanup does not change the outcome', async () => {
    const { a } = await setup('wf-cp-edge')
    let ran = false
    await expect(withCheckpoint(a, () => { ran = true }, { name: '' })).rejects.toMatchObject({ code: 'INVALID_REQUEST' })
    expect(ran).toBe(false)

    const cleanupErrors: unknown[] = []
    const api = { ...a, createSnapshot: a.createSnapshot, restore: a.restore, deleteSnapshot: async () => { throw new AccordError('WORKFLOW_UNAVAILABLE', 'gone') } }
    expect(await withCheckpoint(api, () => 'fine', { onCleanupError: err => { cleanupErrors.push(err) } })).toBe('fine')
    expect(cleanupErrors).toHaveLength(1)
    const boom = new Error('boom')
    await expect(withCheckpoint(api, () => { throw boom }, { onCleanupError: () => { throw new Error('reporter broke') } })).rejects.toBe(boom)
    expect(await a.listSnapshots()).toHaveLength(2) // both were left in place, as reported
  })
})

describe('autoCheckpoint', () => {
  it('takes routine snapshots every intervalMs and keeps at most `keep`; stop() stops it', async () => {
    // The server's own policy would keep 3 routine snapshots; lift it so pruning here is ours.
    const { a } = await setup('wf-auto', { snapshots: { keepRoutine: 1000 } })
    const api = spying(a)
    const failures: unknown[] = []
    const auto: AutoCheckpoint = autoCheckpoint(api, { intervalMs: 50, keep: 2, onFailure: err => { failures.push(err) } })
    stops.push(auto.stop)
    expect(auto.onCompletion).toBe(false)
    expect(auto.onError).toBe(false)

    const routine = async (): Promise<SnapshotRecord[]> => (await a.listSnapshots()).filter(s => s.kind === 'routine')
    await waitFor(async () => api.created.length >= 5 && (await routine()).length <= 2, { what: 'five ticks, pruned to 2' })
    auto.stop()
    const madeAtStop = api.requested.length
    // A tick in flight at stop() still completes (and prunes); wait until it has.
    await waitFor(() => api.created.length === madeAtStop, { what: 'in-flight checkpoint settled' })
    await waitFor(async () => (await routine()).length === 2, { what: 'pruned to keep' })
    const kept = await routine()
    // The newest two survive, named after their reason and time.
    expect(kept.map(s => s.id)).toEqual(api.created.slice(-2).map(s => s.id))
    for (const s of kept) {
      expect(s.name).toMatch(/^auto interval \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      expect(new Date(s.name.slice('auto interval '.length)).toString()).not.toBe('Invalid Date')
    }
    expect(failures).toEqual([])

    // No timer is left: over several intervals nothing new is requested (fails fast if it is).
    const quietUntil = Date.now() + 300
    await waitFor(() => {
      if (api.requested.length !== madeAtStop) throw new Error(`checkpoint after stop(): ${api.requested.length} > ${madeAtStop}`)
      return Date.now() >= quietUntil
    }, { timeoutMs: 5_000, intervalMs: 20, what: 'quiet period after stop()' })
    expect(api.requested.length).toBe(madeAtStop)
    await expect(auto.checkpoint('completion')).rejects.toBeInstanceOf(ClosedError)
  })

  it('checkpoint(completion) creates a routine snapshot, checkpoint(error) a recovery one; flags are exposed', async () => {
    const { a, b } = await setup('wf-auto-events')
    const auto = autoCheckpoint(a, { keep: 2, onCompletion: true, onError: true })
    stops.push(auto.stop)
    expect(auto.onCompletion).toBe(true)
    expect(auto.onError).toBe(true)
    const done = await auto.checkpoint('completion')
    expect(done).toMatchObject({ kind: 'routine', version: 1, createdBy: 'agent-a' })
    expect(done.name).toMatch(/^auto completion \d{4}-/)
    expect((await b.listSnapshots()).map(s => s.id)).toEqual([done.id])

    b.update(d => { d.step = 'broken' })
    await waitFor(() => a.state.step === 'broken')
    const failed = await auto.checkpoint('error')
    expect(failed).toMatchObject({ kind: 'recovery', version: 2 })
    expect(failed.name).toMatch(/^auto error /)
    // Pruning counts routine snapshots only: two more completions drop the oldest routine one.
    const c2 = await auto.checkpoint('completion')
    const c3 = await auto.checkpoint('completion')
    expect((await a.listSnapshots()).map(s => s.id).sort()).toEqual([failed.id, c2.id, c3.id].sort())
  })

  it('reports failures of timer-driven checkpoints through onFailure, never as unhandled rejections', async () => {
    const failures: unknown[] = []
    let calls = 0
    const broken: Pick<HistoryApi, 'createSnapshot' | 'listSnapshots' | 'deleteSnapshot'> = {
      createSnapshot: async () => { calls++; throw new AccordError('WORKFLOW_UNAVAILABLE', 'connection lost before the server answered') },
      listSnapshots: async () => [],
      deleteSnapshot: async () => {}
    }
    const auto = autoCheckpoint(broken, { intervalMs: 20, onFailure: err => { failures.push(err) } })
    stops.push(auto.stop)
    await waitFor(() => failures.length >= 3, { what: 'three reported failures' })
    expect(failures.every(f => f instanceof AccordError && f.code === 'WORKFLOW_UNAVAILABLE')).toBe(true)
    expect(calls).toBeGreaterThanOrEqual(3) // it keeps trying on the next ticks
    // Without onFailure, failures are dropped silently (vitest fails the run on unhandled rejections).
    const silent = autoCheckpoint(broken, { intervalMs: 20 })
    stops.push(silent.stop)
    const before = calls
    await waitFor(() => calls >= before + 3, { what: 'silent ticks' })
    expect(() => autoCheckpoint(broken, { intervalMs: 0 })).toThrow(/intervalMs/)
    expect(() => autoCheckpoint(broken, { keep: 0 })).toThrow(/keep/)
  })
})
