import { describe, expect, it } from 'vitest'
import jsonpatch from 'fast-json-patch'
import { headOf, useServers } from './helpers/use-servers.ts'
import { closeClients, sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import type { VersionRecord } from '../src/node/index.ts'

const { start } = useServers()


describe('versions and history', () => {
  it('records a version per change with author, description and meta; history pages newest first', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-v', 'planner')
    const b = sdkAgent(srv.url, 'wf-v', 'worker')
    const stock = stockClient(srv.url, 'wf-v')
    await Promise.all([a.whenSynced(), b.whenSynced(), stock.synced()])
    const seenByB: Array<{ author: string, description?: string }> = []
    b.subscribe(change => { if (!change.local) seenByB.push({ author: change.author, description: change.description }) })
    a.update(d => { d.tasks = ['plan'] }, { description: 'create the plan', meta: { runId: 'run-1', traceId: 't-1' } })
    await waitFor(async () => (await headOf(srv, 'wf-v')) === 1)
    b.patch([{ op: 'add', path: '/tasks/-', value: 'work' }], { description: 'add work', meta: { toolCallId: 'call-7' } })
    await waitFor(async () => (await headOf(srv, 'wf-v')) === 2)
    b.update(d => { delete d.tasks })
    await waitFor(async () => (await headOf(srv, 'wf-v')) === 3)
    stock.doc.getMap('state').set('stock', true)
    await waitFor(async () => (await headOf(srv, 'wf-v')) === 4)

    // The server names the author and description of each relayed update (stored is not yet
    // received: wait until b holds the stock client's edit).
    await waitFor(() => seenByB.length >= 2, { what: 'b to receive both relayed updates' })
    expect(seenByB).toEqual([{ author: 'planner', description: 'create the plan' }, { author: 'anonymous', description: undefined }])
    const all = await a.history()
    expect(all.map(v => [v.version, v.parentVersion, v.author])).toEqual([
      [4, 3, 'anonymous'], [3, 2, 'worker'], [2, 1, 'worker'], [1, 0, 'planner']
    ])
    expect(all[3]).toMatchObject({ description: 'create the plan', meta: { runId: 'run-1', traceId: 't-1' }, changes: [{ op: 'add', path: '/tasks', value: ['plan'] }] })
    expect(all[2]).toMatchObject({ description: 'add work', meta: { toolCallId: 'call-7' }, changes: [{ op: 'add', path: '/tasks/1', value: 'work' }] })
    expect(all[1]).toMatchObject({ description: 'update by worker', changes: [{ op: 'remove', path: '/tasks' }] })
    expect(all[0]?.description).toBe('update by anonymous')
    for (const v of all) expect(v.checksum).toMatch(/^[0-9a-f]{64}$/)
    expect(all[1]?.snapshot).not.toBe(all[2]?.snapshot) // a delete-only change still moves the snapshot

    const page = await b.history({ limit: 2, before: 4 })
    expect(page.map(v => v.version)).toEqual([3, 2])
    expect((await srv.server.history('wf-v', { limit: 1 })).map(v => v.version)).toEqual([4])
    await expect(srv.server.history('nope')).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(a.stateAt(99)).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  it('stateAt of every version of a 200-version history equals what a client observed, also archived ones and after a restart', async () => {
    const opts = { keyframeEvery: 25, retention: { maxVersions: 50 } }
    const srv = await start(opts)
    const a = sdkAgent(srv.url, 'wf-200', 'writer-a')
    const c = sdkAgent(srv.url, 'wf-200', 'writer-c')
    const observer = sdkAgent(srv.url, 'wf-200', 'observer')
    await Promise.all([a.whenSynced(), c.whenSynced(), observer.whenSynced()])
    // The observer receives each version's update before its record, so at each record its JSON
    // is exactly that version's state.
    const seen = new Map<number, string>()
    await observer.subscribe({}, record => { seen.set(record.version, JSON.stringify(observer.state)) }).ready
    let n = 0
    while (n < 200) {
      const writer = n % 3 === 0 ? c : a
      const i = n
      writer.update(d => {
        const list = (d.list as number[] | undefined) ?? []
        if (i % 5 === 4) list.splice(0, 1)
        else list.push(i)
        d.list = list
        d[`k${i % 9}`] = { i, by: writer.agentId }
        if (i % 7 === 0) delete d[`k${(i + 3) % 9}`]
      })
      const target = ++n
      await waitFor(() => seen.has(target), { what: `version ${target} observed` })
    }
    expect(await headOf(srv, 'wf-200')).toBe(200)
    expect(await srv.server.store.archivedThrough('wf-200')).toBeGreaterThanOrEqual(125)
    for (let v = 1; v <= 200; v++) {
      expect(JSON.stringify(await srv.server.stateAt('wf-200', v)), `version ${v}`).toBe(seen.get(v))
    }
    expect(await observer.stateAt(10)).toEqual(JSON.parse(seen.get(10) as string))
    // history pages straight through the archive boundary
    const versions: number[] = []
    let before: number | undefined
    for (;;) {
      const page = await srv.server.history('wf-200', { limit: 33, before })
      if (page.length === 0) break
      versions.push(...page.map(r => r.version))
      before = page[page.length - 1]?.version
    }
    expect(versions).toEqual(Array.from({ length: 200 }, (_, i) => 200 - i))

    // diff round trips, including across the archive
    for (const [from, to] of [[0, 200], [3, 150], [150, 3], [77, 78], [199, 200], [10, 10]] as const) {
      const ops = await srv.server.diff('wf-200', from, to)
      const applied = jsonpatch.applyPatch(await srv.server.stateAt('wf-200', from), ops as any, true, false).newDocument
      expect(applied, `${from} -> ${to}`).toEqual(await srv.server.stateAt('wf-200', to))
    }

    await closeClients()
    await srv.stop()
    const again = await start({ dataDir: srv.dataDir, ...opts })
    for (const v of [1, 60, 124, 125, 126, 199, 200]) {
      expect(JSON.stringify(await again.server.stateAt('wf-200', v)), `after restart, version ${v}`).toBe(seen.get(v))
    }
    expect((await again.server.history('wf-200', { limit: 3 })).map(r => r.version)).toEqual([200, 199, 198])
  })
})

describe('snapshots and restore', () => {
  it('restores an old version with live peers connected, as a new version; later edits are kept', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-restore', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-restore', 'agent-b')
    const stock = stockClient(srv.url, 'wf-restore')
    await Promise.all([a.whenSynced(), b.whenSynced(), stock.synced()])
    a.update(d => { d.step = 1; d.items = ['x'] })
    await waitFor(async () => (await headOf(srv, 'wf-restore')) === 1)
    const snap = await a.createSnapshot({ name: 'before-risky', kind: 'pre_operation', description: 'about to experiment' })
    expect(snap).toMatchObject({ version: 1, kind: 'pre_operation', createdBy: 'agent-a' })
    b.update(d => { d.step = 2; d.items = ['x', 'y', 'z']; d.junk = true })
    await waitFor(async () => (await headOf(srv, 'wf-restore')) === 2)

    const restored = await b.restore({ snapshotId: snap.id })
    expect(restored).toMatchObject({ version: 3, author: 'agent-b', description: 'restored from snapshot "before-risky" (version 1)' })
    const state = await waitForConvergence([() => a.state, () => b.state, stock.json])
    expect(state).toEqual({ step: 1, items: ['x'] })
    expect(await srv.server.stateAt('wf-restore', 3)).toEqual({ step: 1, items: ['x'] })

    a.update(d => { d.after = 'kept' })
    expect(await waitForConvergence([() => a.state, () => b.state, stock.json])).toEqual({ step: 1, items: ['x'], after: 'kept' })
    const byVersion = await a.restore({ version: 2 })
    expect(byVersion.description).toBe('restored from version 2')
    expect(await waitForConvergence([() => a.state, () => b.state])).toEqual({ step: 2, items: ['x', 'y', 'z'], junk: true })

    expect((await a.listSnapshots()).map(s => s.name)).toEqual(['before-risky'])
    await a.deleteSnapshot(snap.id)
    expect(await a.listSnapshots()).toEqual([])
    await expect(a.restore({ snapshotId: snap.id })).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  it('keeps the newest 3 routine snapshots and recovery snapshots for 7 days', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-snaps', 'agent')
    await a.whenSynced()
    a.update(d => { d.x = 1 })
    await waitFor(async () => (await headOf(srv, 'wf-snaps')) === 1)
    for (let i = 0; i < 5; i++) await srv.server.createSnapshot('wf-snaps', { name: `r${i}`, kind: 'routine' })
    await srv.server.createSnapshot('wf-snaps', { name: 'manual', kind: 'manual' })
    const recovery = await srv.server.createSnapshot('wf-snaps', { name: 'rec', kind: 'recovery' })
    expect((await srv.server.listSnapshots('wf-snaps')).map(s => s.name)).toEqual(['r2', 'r3', 'r4', 'manual', 'rec'])
    // Eight days later, the recovery snapshot is gone and the rest stay.
    await srv.server.store.putSnapshot({ ...recovery, createdAt: Date.now() - 8 * 24 * 3600 * 1000 })
    await srv.server.sweep()
    expect((await srv.server.listSnapshots('wf-snaps')).map(s => s.name)).toEqual(['r2', 'r3', 'r4', 'manual'])
  })
})

describe('conflicts', () => {
  it('a concurrent same-key write yields exactly one conflict record naming both agents and the winner', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-conflict', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-conflict', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update(d => { d.task = { owner: 'nobody', title: 't' } })
    await waitFor(() => (b.state.task as any)?.owner === 'nobody')
    a.provider.disconnect()
    b.provider.disconnect()
    a.update(d => { (d.task as any).owner = 'agent-a'; d.onlyA = 1 })
    b.update(d => { (d.task as any).owner = 'agent-b'; d.onlyB = 1 })
    a.provider.connect()
    b.provider.connect()
    const final = await waitForConvergence([() => a.state, () => b.state]) as any
    expect(final).toMatchObject({ onlyA: 1, onlyB: 1, task: { title: 't' } })
    const records = await waitFor(async () => { const c = await a.conflicts(); return c.length > 0 ? c : null })
    expect(records).toHaveLength(1)
    const [conflict] = records
    expect(conflict).toMatchObject({ path: '/task/owner', winner: final.task.owner })
    expect(conflict?.writes.map(w => [w.agent, w.value]).sort()).toEqual([['agent-a', 'agent-a'], ['agent-b', 'agent-b']])
    expect(conflict?.version).toBeGreaterThan(1)
  })

  it('the same array element replaced concurrently yields one conflict; Yjs keeps both values', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-arr', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-arr', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update(d => { d.steps = ['one', 'two', 'three'] })
    await waitFor(() => (b.state.steps as string[] | undefined)?.length === 3)
    a.provider.disconnect()
    b.provider.disconnect()
    a.patch([{ op: 'replace', path: '/steps/1', value: 'two-by-a' }])
    b.patch([{ op: 'replace', path: '/steps/1', value: 'two-by-b' }])
    a.provider.connect()
    b.provider.connect()
    const final = await waitForConvergence([() => a.state, () => b.state]) as { steps: string[] }
    expect(final.steps).toHaveLength(4)
    expect(final.steps.slice(1, 3).sort()).toEqual(['two-by-a', 'two-by-b'])
    const records = await waitFor(async () => { const c = await srv.server.conflicts('wf-arr'); return c.length > 0 ? c : null })
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ path: '/steps/1', winner: final.steps[1] === 'two-by-a' ? 'agent-a' : 'agent-b' })
    expect(records[0]?.writes.map(w => [w.agent, w.value]).sort()).toEqual([['agent-a', 'two-by-a'], ['agent-b', 'two-by-b']])
  })

  it('a resolver registered on the server overrides the winner with a recorded resolution', async () => {
    const srv = await start({ resolveConflict: c => c.path === '/owner' ? { value: 'arbiter' } : undefined })
    const a = sdkAgent(srv.url, 'wf-resolve', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-resolve', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.provider.disconnect()
    b.provider.disconnect()
    a.update(d => { d.owner = 'a' })
    b.update(d => { d.owner = 'b' })
    a.provider.connect()
    b.provider.connect()
    await waitFor(() => a.state.owner === 'arbiter' && b.state.owner === 'arbiter', { what: 'resolution everywhere' })
    const [conflict] = await waitFor(async () => { const c = await srv.server.conflicts('wf-resolve'); return c[0]?.resolution ? c : null })
    expect(conflict?.resolution).toMatchObject({ value: 'arbiter', by: 'accord:resolver' })
    const resolution = await srv.server.history('wf-resolve', { limit: 1, before: (conflict?.resolution?.version ?? 0) + 1 })
    expect(resolution[0]?.description).toBe(`resolved conflict ${conflict?.id} at /owner`)
  })
})

describe('change-record subscriptions', () => {
  it('filters by path and, after a disconnect, delivers every missed record once, in order', async () => {
    const srv = await start()
    const writer = sdkAgent(srv.url, 'wf-sub', 'writer')
    const reader = sdkAgent(srv.url, 'wf-sub', 'reader', { maxBackoffTime: 100 })
    await Promise.all([writer.whenSynced(), reader.whenSynced()])
    const all: VersionRecord[] = []
    const tasksOnly: VersionRecord[] = []
    await reader.subscribe({}, r => { all.push(r) }).ready
    await reader.subscribe({ path: '/tasks' }, r => { tasksOnly.push(r) }).ready
    const serverSide: number[] = []
    const stop = await srv.server.subscribe('wf-sub', { path: '/tasks/0' }, r => { serverSide.push(r.version) })

    writer.update(d => { d.tasks = ['a'] })
    await waitFor(() => all.length === 1)
    reader.provider.disconnect()
    for (let i = 0; i < 10; i++) {
      writer.update(d => { if (i % 2 === 0) (d.tasks as string[]).push(`t${i}`); else d.other = i })
      await waitFor(async () => (await headOf(srv, 'wf-sub')) === i + 2)
    }
    expect(all.length).toBe(1)
    reader.provider.connect()
    await waitFor(() => all.length === 11, { what: 'missed records' })
    writer.update(d => { d.other = 'live' })
    await waitFor(() => all.length === 12)
    expect(all.map(r => r.version)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
    expect(tasksOnly.map(r => r.version)).toEqual([1, 2, 4, 6, 8, 10])
    expect(tasksOnly.every(r => r.changes.every(op => op.path.startsWith('/tasks')))).toBe(true)
    expect(serverSide).toEqual([1]) // only the first write touched /tasks/0 (or its parent)
    stop()

    // A subscriber that comes back later with its last seen version gets the rest.
    const late: number[] = []
    const again = sdkAgent(srv.url, 'wf-sub', 'late')
    again.subscribe({ after: 9 }, r => { late.push(r.version) })
    await waitFor(() => late.length === 3)
    expect(late).toEqual([10, 11, 12])
  })
})

describe('forks', () => {
  it('fork, edit both, promote: the parent has both sides\' edits and the fork is gone', async () => {
    const srv = await start()
    const parent = sdkAgent(srv.url, 'wf-parent', 'lead')
    await parent.whenSynced()
    parent.update(d => { d.plan = { steps: ['a'] }; d.notes = 'v1' })
    await waitFor(async () => (await headOf(srv, 'wf-parent')) === 1)
    const { workflowId: forkId, version } = await parent.fork()
    expect(version).toBe(1)
    expect(forkId).toMatch(/^wf-parent\.fork-/)

    const spec = sdkAgent(srv.url, forkId, 'speculator')
    await spec.whenSynced()
    expect(spec.state).toEqual({ plan: { steps: ['a'] }, notes: 'v1' })
    spec.update(d => { (d.plan as any).steps.push('b-from-fork'); d.forkOnly = true })
    parent.update(d => { d.notes = 'v2-parent' })
    await waitFor(async () => (await headOf(srv, forkId)) === 2 && (await headOf(srv, 'wf-parent')) === 2)

    const promoted = await parent.promote(forkId)
    expect(promoted.description).toBe(`promoted fork ${forkId}`)
    expect(await waitForConvergence([() => parent.state])).toEqual({ plan: { steps: ['a', 'b-from-fork'] }, notes: 'v2-parent', forkOnly: true })
    expect(await srv.server.store.getMeta(forkId)).toBeNull()
    await expect(parent.discard(forkId)).rejects.toMatchObject({ code: 'NOT_FOUND' })

    const { workflowId: other } = await srv.server.fork('wf-parent', { version: 1 })
    expect(await srv.server.stateAt(other, 1)).toEqual({ plan: { steps: ['a'] }, notes: 'v1' })
    await parent.discard(other)
    expect(await srv.server.store.getMeta(other)).toBeNull()
    await expect(parent.promote('wf-parent')).rejects.toMatchObject({ code: 'INVALID_REQUEST' })
  })
})

describe('deletion and quota', () => {
  it('deleteWorkflow closes its clients with 4404 and removes every key', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-del', 'agent')
    await a.whenSynced()
    a.update(d => { d.x = 1 })
    await waitFor(async () => (await headOf(srv, 'wf-del')) === 1)
    await srv.server.createSnapshot('wf-del', { name: 's' })
    const closed = new Promise<number>(resolve => { a.provider.on('connection-close', (e: any) => { if (e !== null) resolve(e.code) }) })
    await srv.server.deleteWorkflow('wf-del')
    expect(await closed).toBe(4404)
    expect(await srv.server.store.getMeta('wf-del')).toBeNull()
    expect(await srv.server.store.countLog('wf-del')).toBe(0)
    expect(await srv.server.store.listSnapshots('wf-del')).toEqual([])
    await expect(srv.server.history('wf-del')).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  it('a workflow over its storage quota refuses writes with 4413 and stores nothing of them', async () => {
    const srv = await start({ quotaBytes: 2000 })
    const a = sdkAgent(srv.url, 'wf-quota', 'agent')
    await a.whenSynced()
    a.update(d => { d.small = 1 })
    await waitFor(async () => (await headOf(srv, 'wf-quota')) === 1)
    const closed = new Promise<{ code: number, reason: string }>(resolve => { a.provider.on('connection-close', (e: any) => { if (e !== null) resolve({ code: e.code, reason: e.reason }) }) })
    a.update(d => { d.big = 'x'.repeat(5000) })
    expect(await closed).toMatchObject({ code: 4413 })
    expect((await closed).reason).toMatch(/storage quota exceeded/)
    expect(await headOf(srv, 'wf-quota')).toBe(1)
  })

  it('deletes workflows idle for longer than deleteIdleAfterDays in the sweep', async () => {
    const srv = await start({ deleteIdleAfterDays: 30 })
    const a = sdkAgent(srv.url, 'wf-idle', 'agent')
    await a.whenSynced()
    a.update(d => { d.x = 1 })
    await waitFor(async () => (await headOf(srv, 'wf-idle')) === 1)
    await closeClients()
    await waitFor(() => srv.server.loadedWorkflows().length === 0)
    await srv.server.sweep()
    expect(await srv.server.store.getMeta('wf-idle')).not.toBeNull()
    const meta = await srv.server.store.getMeta('wf-idle')
    await srv.server.store.putMeta({ ...meta!, updatedAt: Date.now() - 31 * 24 * 3600 * 1000 })
    await srv.server.sweep()
    expect(await srv.server.store.getMeta('wf-idle')).toBeNull()
  })
})

describe('restart', () => {
  it('keeps versions, snapshots, conflicts and forks across a server restart', async () => {
    const first = await start()
    const a = sdkAgent(first.url, 'wf-keep', 'agent-a')
    const b = sdkAgent(first.url, 'wf-keep', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update(d => { d.v = 1 }, { description: 'first' })
    await waitFor(async () => (await headOf(first, 'wf-keep')) === 1)
    const snap = await a.createSnapshot({ name: 'one', kind: 'manual' })
    a.provider.disconnect()
    b.provider.disconnect()
    a.update(d => { d.v = 'a' })
    b.update(d => { d.v = 'b' })
    a.provider.connect()
    b.provider.connect()
    await waitForConvergence([() => a.state, () => b.state])
    await waitFor(async () => (await a.conflicts()).length === 1)
    const { workflowId: forkId } = await a.fork({ version: 1 })
    const historyBefore = await a.history()
    const diffBefore = await a.diff(1, historyBefore[0]!.version)
    await closeClients()
    await first.stop()

    const second = await start({ dataDir: first.dataDir })
    const c = sdkAgent(second.url, 'wf-keep', 'agent-c')
    await c.whenSynced()
    expect(await c.history()).toEqual(historyBefore)
    expect(await c.diff(1, historyBefore[0]!.version)).toEqual(diffBefore)
    expect((await c.listSnapshots()).map(s => s.id)).toEqual([snap.id])
    expect(await c.conflicts()).toHaveLength(1)
    expect(await second.server.stateAt(forkId, 1)).toEqual({ v: 1 })
    await c.restore({ snapshotId: snap.id })
    await waitFor(() => c.state.v === 1)
    await c.promote(forkId)
    expect(await second.server.store.getMeta(forkId)).toBeNull()
  })
})
