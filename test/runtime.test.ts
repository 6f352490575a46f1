import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { headOf, useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { kill, runChild } from './helpers/child.ts'
import { InvalidTransitionError, PausedError, type VersionRecord } from '../src/node/index.ts'

const { start, restart } = useServers()


describe('agent lifecycle', () => {
  it('validates transitions against the table, keeps history, syncs, and softReset returns to idle', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-life', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-life', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    expect(a.lifecycle.get()).toBeUndefined()
    a.lifecycle.transition('processing', { metadata: { task: 't1' } })
    a.lifecycle.transition('error', { metadata: { message: 'boom' } })

    let updates = 0
    a.doc.on('update', () => { updates++ })
    expect(() => a.lifecycle.transition('processing')).toThrow(InvalidTransitionError)
    try {
      a.lifecycle.transition('notifying')
    } catch (err) {
      expect(err).toMatchObject({ code: 'INVALID_TRANSITION', details: { from: 'error', to: 'notifying' } })
    }
    expect(updates).toBe(0) // nothing written

    await waitFor(() => b.lifecycle.get('agent-a')?.status === 'error', { what: 'b sees a in error' })
    expect(b.lifecycle.get('agent-a')?.history.map(h => [h.from, h.to])).toEqual([['idle', 'processing'], ['processing', 'error']])
    expect(b.lifecycle.get('agent-a')?.metadata).toEqual({ message: 'boom' })

    const reset = b.lifecycle.softReset('agent-a')
    expect(reset.status).toBe('idle')
    expect(reset.history.map(h => h.to)).toEqual(['processing', 'error', 'idle'])
    await waitFor(() => a.lifecycle.get()?.status === 'idle')
    const records = await a.history({ limit: 1 })
    expect(records[0]?.description).toBe('agent-a: soft reset to idle')
    expect(records[0]?.runtimeChanges?.some(op => op.path.startsWith('/agents/agent-a'))).toBe(true)
    expect(records[0]?.changes).toEqual([])
  })

  it('accepts a custom transition table', async () => {
    const srv = await start()
    const strict = sdkAgent(srv.url, 'wf-table', 'strict', {
      lifecycle: { transitions: { idle: ['processing'], processing: ['idle'], resuming: [], error: [], archiving: [], notifying: [] } }
    })
    await strict.whenSynced()
    expect(() => strict.lifecycle.transition('notifying')).toThrow(InvalidTransitionError)
    strict.lifecycle.transition('processing')
    expect(() => strict.lifecycle.transition('error')).toThrow(InvalidTransitionError)
  })

  it('records a timeout for an agent whose process died in processing, even after the workflow was evicted', async () => {
    const srv = await start({ lifecycle: { timeouts: { processing: 300 }, checkIntervalMs: 50 }, evictionGraceMs: 0 })
    const { child } = await runChild('test/fixtures/doomed-agent.ts', [srv.url, 'wf-timeout', 'doomed', 'process'])
    await kill(child)
    await waitFor(() => srv.server.loadedWorkflows().length === 0, { what: 'workflow evicted' })

    const watcher = sdkAgent(srv.url, 'wf-timeout', 'watcher')
    const seen: VersionRecord[] = []
    await watcher.subscribe({ after: 0 }, r => { seen.push(r) }).ready
    const timeout = await waitFor(() => seen.find(r => r.description === 'agent doomed timed out in processing'), { what: 'timeout record' })
    expect(timeout.author).toBe('accord')
    expect(timeout.runtimeChanges?.some(op => op.path.startsWith('/events'))).toBe(true)
    await waitFor(() => watcher.lifecycle.get('doomed')?.timedOut !== undefined)
    expect(watcher.lifecycle.get('doomed')?.timedOut?.status).toBe('processing')
    expect(watcher.runtime.events).toMatchObject([{ type: 'timeout', agentId: 'doomed', status: 'processing' }])
  })
})

describe('sessions: pause and resume', () => {
  it('refuses SDK writes while paused, records stock clients\' writes as violations, and resume merges context', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-pause', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-pause', 'agent-b')
    const stock = stockClient(srv.url, 'wf-pause')
    await Promise.all([a.whenSynced(), b.whenSynced(), stock.synced()])
    a.update(d => { d.x = 1 })
    a.pause('waiting for human approval', { ticket: 42 })
    await waitFor(() => b.session.paused)
    expect(b.session).toMatchObject({ paused: true, reason: 'waiting for human approval', metadata: { ticket: 42 }, pausedBy: 'agent-a' })
    expect(() => b.update(d => { d.x = 2 })).toThrow(PausedError)
    expect(() => b.patch([{ op: 'add', path: '/y', value: 1 }])).toThrow(PausedError)
    expect(() => b.tasks.push({ job: 1 })).toThrow(PausedError)
    expect(() => b.lifecycle.transition('processing')).toThrow(PausedError)

    await waitFor(() => stock.json() !== null && (stock.json() as any).x === 1)
    stock.doc.getMap('state').set('sneaky', true)
    const [violation] = await waitFor(async () => { const v = await a.violations(); return v.length > 0 ? v : null })
    expect(violation).toMatchObject({ kind: 'paused', agent: 'anonymous', paths: ['/sneaky'], reverted: false })

    b.resume({ approvedBy: 'alice' })
    await waitFor(() => !a.session.paused)
    expect(a.session).toMatchObject({ paused: false, resumedBy: 'agent-b', context: { approvedBy: 'alice' } })
    a.update(d => { d.x = 3 })
    await waitForConvergence([() => a.state, () => b.state, stock.json])
    expect(() => a.resume()).toThrow(/not paused/)
  })
})

describe('task stack', () => {
  it('claims LIFO from the stack and FIFO from the queue; complete and fail with retries', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-tasks', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-tasks', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    for (const n of [1, 2, 3]) a.tasks.push({ n })
    for (const n of [1, 2, 3]) a.tasks.push({ n }, { kind: 'queue', maxRetries: 1 })
    await waitFor(() => b.tasks.list().length === 6)

    const top = await b.tasks.claim()
    expect(top?.payload).toEqual({ n: 3 })
    expect(top).toMatchObject({ status: 'claimed', claimedBy: 'agent-b' })
    const first = await b.tasks.claim({ kind: 'queue' })
    expect(first?.payload).toEqual({ n: 1 })

    await expect(a.tasks.complete(top!.id)).rejects.toMatchObject({ code: 'NOT_TASK_OWNER' })
    const done = await b.tasks.complete(top!.id, { ok: true })
    expect(done).toMatchObject({ status: 'done', result: { ok: true } })

    const again = await b.tasks.fail(first!.id, 'flaky')
    expect(again).toMatchObject({ status: 'pending', attempts: 1, error: 'flaky', claimedBy: null })
    const retry = await a.tasks.claim({ kind: 'queue' })
    expect(retry?.id).toBe(first!.id)
    const failed = await a.tasks.fail(first!.id, 'still flaky')
    expect(failed).toMatchObject({ status: 'failed', attempts: 2 })
    await waitFor(() => a.tasks.list({ status: 'done' }).length === 1 && a.tasks.list({ status: 'failed' }).length === 1)
    expect((await a.tasks.claim())?.payload).toEqual({ n: 2 })
  })

  it('two agents racing for one task 1,000 times never both own it', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-race', 'racer-a')
    const b = sdkAgent(srv.url, 'wf-race', 'racer-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    const wins = { 'racer-a': 0, 'racer-b': 0 }
    for (let i = 0; i < 1000; i++) {
      const task = a.tasks.push({ i })
      await waitFor(() => b.tasks.get(task.id) !== undefined, { intervalMs: 1 })
      const [ra, rb] = await Promise.all([a.tasks.claim(), b.tasks.claim()])
      const owners = [ra, rb].filter(r => r !== null)
      expect(owners, `round ${i}`).toHaveLength(1)
      expect(owners[0]?.id).toBe(task.id)
      wins[owners[0]!.claimedBy as 'racer-a' | 'racer-b']++
      await (ra !== null ? a : b).tasks.complete(task.id)
    }
    expect(wins['racer-a'] + wins['racer-b']).toBe(1000)
    expect(a.tasks.list({ status: 'done' })).toHaveLength(1000)
  })

  it('releases the task of an agent killed while holding it, once its lease expires', async () => {
    const srv = await start({ lifecycle: { checkIntervalMs: 50 } })
    const owner = sdkAgent(srv.url, 'wf-killed', 'boss')
    await owner.whenSynced()
    const task = owner.tasks.push({ job: 'important' })
    await waitFor(async () => (await headOf(srv, 'wf-killed')) === 1)
    const { child, first } = await runChild('test/fixtures/doomed-agent.ts', [srv.url, 'wf-killed', 'doomed', 'claim', '400'])
    expect(first).toEqual({ claimed: task.id })
    await kill(child)
    await waitFor(() => owner.tasks.list({ status: 'pending' }).some(t => t.id === task.id), { what: 'task released' })
    expect(owner.tasks.list()[0]).toMatchObject({ attempts: 1, error: 'lease of doomed expired' })
    expect(owner.runtime.events).toMatchObject([{ type: 'lease-expired', agentId: 'doomed', taskId: task.id }])
    const reclaimed = await owner.tasks.claim()
    expect(reclaimed).toMatchObject({ id: task.id, claimedBy: 'boss' })
  })
})

describe('validation and drift', () => {
  const Schema = z.object({ count: z.number().int().nonnegative(), label: z.string().optional() })

  it('reverts an invalid write from a stock y-websocket client on every peer, and records the violation', async () => {
    const srv = await start({ schemas: { 'wf-drift': Schema } })
    const a = sdkAgent(srv.url, 'wf-drift', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-drift', 'agent-b')
    const stock = stockClient(srv.url, 'wf-drift')
    await Promise.all([a.whenSynced(), b.whenSynced(), stock.synced()])
    a.update(d => { d.count = 1; d.label = 'ok' })
    await waitForConvergence([() => a.state, () => b.state, stock.json])

    // b must never observe an invalid state, not even for one transaction.
    const observed: unknown[] = []
    b.subscribe(() => { observed.push(b.state) })
    stock.doc.transact(() => {
      stock.doc.getMap('state').set('count', -5)
      stock.doc.getMap('state').set('label', 'changed')
    })
    const [violation] = await waitFor(async () => { const v = await srv.server.violations('wf-drift'); return v.length > 0 ? v : null })
    expect(violation).toMatchObject({ kind: 'schema', agent: 'anonymous', paths: ['/count'], reverted: true })
    expect(violation?.issues?.length).toBeGreaterThan(0)
    const final = await waitForConvergence([() => a.state, () => b.state, stock.json])
    expect(final).toEqual({ count: 1, label: 'ok' })
    expect(observed.every(s => Schema.safeParse(s).success)).toBe(true)

    // Valid writes keep flowing; the document never stays invalid, also after a restart.
    a.update(d => { d.count = 2 })
    await waitForConvergence([() => a.state, () => b.state, stock.json])
    expect(Schema.safeParse(await srv.server.stateAt('wf-drift', await headOf(srv, 'wf-drift'))).success).toBe(true)
  })

  it('a schema registered at runtime applies to a loaded workflow', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-late-schema', 'agent-a')
    const stock = stockClient(srv.url, 'wf-late-schema')
    await Promise.all([a.whenSynced(), stock.synced()])
    a.update(d => { d.count = 0 })
    await waitForConvergence([() => a.state, stock.json])
    srv.server.registerSchema('wf-late-schema', Schema)
    stock.doc.getMap('state').set('count', 'not a number')
    await waitFor(() => (stock.json() as any).count === 0, { what: 'writer converges back' })
    expect(a.state).toEqual({ count: 0 })
  })
})

describe('recovery and checkpoints on the handle', () => {
  it('emits reconnecting and recovered, and keeps edits made while disconnected', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-recover', 'agent-a', { recovery: { baseMs: 20, capMs: 100 } })
    await a.whenSynced()
    const events: string[] = []
    a.onRecovery(e => { events.push(e.type) })
    a.update(d => { d.before = true })
    await waitFor(async () => (await headOf(srv, 'wf-recover')) === 1)
    await srv.stop()
    await waitFor(() => events.filter(e => e === 'reconnecting').length >= 2, { what: 'reconnect attempts' })
    a.update(d => { d.offline = true })
    const again = await restart(srv)
    await waitFor(() => events.includes('recovered'), { what: 'recovered' })
    const b = sdkAgent(again.url, 'wf-recover', 'agent-b')
    await waitFor(() => b.state.offline === true, { what: 'offline edit synced' })
    expect(b.state).toEqual({ before: true, offline: true })
  })

  it('withCheckpoint reverts a failed operation; autoCheckpoint fires on task completion and on the error status', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-ckpt', 'agent-a')
    await a.whenSynced()
    a.update(d => { d.stage = 'stable' })
    await expect(a.withCheckpoint(async () => {
      a.update(d => { d.stage = 'half-done' })
      throw new Error('tool crashed')
    })).rejects.toThrow('tool crashed')
    await waitFor(() => a.state.stage === 'stable', { what: 'reverted' })
    expect(await a.listSnapshots()).toEqual([])

    const auto = a.autoCheckpoint({ onCompletion: true, onError: true })
    const task = a.tasks.push({ job: 1 })
    await waitFor(() => a.tasks.get(task.id) !== undefined)
    await a.tasks.complete((await a.tasks.claim())!.id)
    await waitFor(async () => (await a.listSnapshots()).some(s => s.kind === 'routine'), { what: 'completion checkpoint' })
    a.lifecycle.transition('error')
    await waitFor(async () => (await a.listSnapshots()).some(s => s.kind === 'recovery'), { what: 'error checkpoint' })
    auto.stop()
  })
})
