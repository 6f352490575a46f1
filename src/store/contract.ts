/**
 * The Store contract: one suite of cases that every storage backend must pass (LevelDB, the
 * in-memory store and PostgreSQL run it in test/store-contract.test.ts; a third-party backend
 * runs it the same way from `@accord-state/accord/server/testing`, with vitest installed).
 * Versions are real Yjs updates and records, built the way the server builds them, and every
 * replayed state is compared with the state the writer had at that version.
 *
 *   import { storeContract } from '@accord-state/accord/server/testing'
 *   storeContract('my store', async () => ({ store: await openMyStore(), destroy: async () => { ... } }))
 *
 * Why one file of ~480 lines: it is one suite a third party imports whole; its cases read top to
 * bottom as the Store interface's contract.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { toBase64 } from 'lib0/buffer'
import * as keys from './keys.ts'
import type { Commit, Replay, Store, WorkflowMeta } from './store.ts'
import { checksumOf } from './checksum.ts'
import { readState, stateRoot } from '../model/json-yjs.ts'
import { CorruptDataError, HeadMovedError } from '../model/errors.ts'
import type { ConflictRecord, SnapshotRecord, ViolationRecord } from '../model/schema.ts'

export type StoredKind = keys.Kind | 'meta'

/** One backend under test. */
export interface Backend {
  /** The store under test (replaced when a backend must reopen it). */
  store: Store
  /** Flips one bit in the stored payload of a value, underneath the store (backends that cannot are not checked for it). */
  corrupt?: (id: string, kind: StoredKind, n?: number | string) => Promise<void>
  /** A second store on the same data, as another server would open it (when the backend allows). */
  another?: () => Promise<Store>
  /** Closes every store and removes the data. */
  destroy: () => Promise<void>
}

// A writer building versions like the server does ------------------------------------------------

/** Builds commits from a real Y.Doc and remembers the JSON state after each version. */
export class Writer {
  readonly doc = new Y.Doc({ gc: true })
  /** states[v]: JSON after version v. */
  readonly states: string[] = ['{}']
  meta: WorkflowMeta
  private conflictId = 0
  private violationId = 0

  constructor (readonly id: string, readonly keyframeEvery = 5, readonly author = 'agent-a') {
    this.meta = { id, createdAt: 1000, updatedAt: 1000, head: 0, conflicts: 0, violations: 0, bytes: 0 }
  }

  /** The commit of the next version: `change` applied to the doc (not stored yet). */
  next (change: (state: Y.Map<unknown>) => void, extra: { conflict?: boolean, violation?: boolean } = {}): Commit {
    const updates: Uint8Array[] = []
    const onUpdate = (u: Uint8Array): void => { updates.push(u) }
    this.doc.on('update', onUpdate)
    this.doc.transact(() => { change(stateRoot(this.doc)) })
    this.doc.off('update', onUpdate)
    const version = this.meta.head + 1
    const state = readState(this.doc)
    const now = 1000 + version
    const conflicts: ConflictRecord[] = extra.conflict === true
      ? [{ id: ++this.conflictId, workflowId: this.id, path: '/n', writes: [{ agent: 'a', clientId: 1, value: 1 }, { agent: 'b', clientId: 2, value: 2 }], winner: 'b', version, detectedAt: now }]
      : []
    const violations: ViolationRecord[] = extra.violation === true
      ? [{ id: ++this.violationId, workflowId: this.id, kind: 'scope', agent: 'c', paths: ['/secret'], reverted: true, version, at: now }]
      : []
    const keyframe = version % this.keyframeEvery === 0 ? Y.encodeStateAsUpdate(this.doc) : undefined
    const meta: WorkflowMeta = {
      ...this.meta,
      head: version,
      updatedAt: now,
      conflicts: this.conflictId,
      violations: this.violationId,
      bytes: this.meta.bytes + updates.reduce((n, u) => n + u.length, 0) + (keyframe?.length ?? 0)
    }
    return {
      meta,
      updates,
      keyframe,
      conflicts,
      violations,
      record: {
        workflowId: this.id,
        version,
        parentVersion: version - 1,
        snapshot: toBase64(Y.encodeSnapshot(Y.snapshot(this.doc))),
        author: this.author,
        timestamp: now,
        description: `version ${version}`,
        meta: {},
        checksum: checksumOf(state),
        changes: []
      }
    }
  }

  /** Marks a commit from next() as stored. */
  stored (c: Commit): void {
    this.meta = c.meta
    this.states[c.record.version] = JSON.stringify(readState(this.doc))
  }

  /** Commits `n` versions, each setting a counter and one of a few keys. */
  async write (store: Store, n: number, extra: { conflictEvery?: number, violationEvery?: number } = {}): Promise<void> {
    for (let i = 0; i < n; i++) {
      const v = this.meta.head + 1
      const c = this.next(state => {
        state.set('counter', v)
        state.set(`k${v % 4}`, `value ${v}`)
        if (v % 6 === 0) state.delete(`k${(v + 1) % 4}`)
      }, { conflict: extra.conflictEvery !== undefined && v % extra.conflictEvery === 0, violation: extra.violationEvery !== undefined && v % extra.violationEvery === 0 })
      await store.commit(this.id, c)
      this.stored(c)
    }
  }
}

export const stateOf = (replay: Replay): string => {
  const doc = new Y.Doc({ gc: true })
  if (replay.keyframe !== null) Y.applyUpdate(doc, replay.keyframe.state)
  for (const entry of replay.entries) for (const u of entry.updates) Y.applyUpdate(doc, u)
  const json = JSON.stringify(readState(doc))
  doc.destroy()
  return json
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** Every record, paging `versions` newest first. */
const allVersions = async (store: Store, id: string, limit: number): Promise<number[]> => {
  const out: number[] = []
  let before: number | undefined
  for (;;) {
    const page = await store.versions(id, { before, limit })
    out.push(...page.map(r => r.version))
    if (page.length < limit) return out
    before = page[page.length - 1]?.version
  }
}

/** Every record, paging `versionsAfter` oldest first. */
const allVersionsAfter = async (store: Store, id: string, limit: number): Promise<number[]> => {
  const out: number[] = []
  for (;;) {
    const page = await store.versionsAfter(id, out[out.length - 1] ?? 0, limit)
    out.push(...page.map(r => r.version))
    if (page.length < limit) return out
  }
}

const snapshot = (workflowId: string, id: string, createdAt: number, version: number): SnapshotRecord =>
  ({ id, workflowId, name: id, kind: 'manual', description: '', version, createdAt, createdBy: 'test' })

// The contract -----------------------------------------------------------------------------------

/**
 * Registers the contract's cases (vitest `describe`/`it`) for one backend: `open` gives a fresh,
 * empty backend per case, `destroy` removes it.
 */
export interface StoreContractOptions {
  /** A reason to register the cases skipped (e.g. the database is unreachable); print it too. */
  skip?: string
  /** false for a backend that cannot damage a stored value underneath itself (no `corrupt`). */
  corruption?: boolean
}

export const storeContract = (name: string, open: () => Promise<Backend>, options: StoreContractOptions = {}): void => {
  const { skip } = options
  ;(skip === undefined ? describe : describe.skip)(`store contract: ${name}`, () => {
    let b: Backend
    beforeEach(async () => { b = await open() })
    afterEach(async () => {
      await b?.destroy()
    })

    it('commit and load: the newest keyframe plus the log after it rebuild the head', async () => {
      const w = new Writer('wf-load', 5)
      await w.write(b.store, 12)
      const stored = await b.store.load('wf-load')
      expect(stored.meta).toEqual(w.meta)
      expect(stored.keyframe?.version).toBe(10)
      expect(stored.entries.map(e => e.version)).toEqual([11, 12])
      expect(stateOf(stored)).toBe(w.states[12])
      expect(await b.store.getMeta('wf-load')).toEqual(w.meta)
      expect(await b.store.keyframes('wf-load')).toEqual([5, 10])
      expect(await b.store.countLog('wf-load')).toBe(12)
      expect(await b.store.archivedThrough('wf-load')).toBe(0)
      expect(await b.store.load('wf-none')).toEqual({ meta: null, keyframe: null, entries: [] })
      expect(await b.store.getMeta('wf-none')).toBeNull()
      expect(await b.store.countLog('wf-none')).toBe(0)
    })

    it('heads: the stored head of each existing workflow in one call, unknown ids left out', async ctx => {
      if (b.store.heads === undefined) {
        ctx.skip('heads() is optional and this backend does not provide it (callers fall back to getMeta)')
        return
      }
      const writers = [new Writer('wf-heads-a', 5), new Writer('wf-heads-b', 5)]
      await writers[0]?.write(b.store, 7)
      await writers[1]?.write(b.store, 3)
      const heads = await b.store.heads(['wf-heads-a', 'wf-heads-none', 'wf-heads-b'])
      expect(Object.fromEntries(heads)).toEqual({ 'wf-heads-a': 7, 'wf-heads-b': 3 })
      expect((await b.store.heads([])).size).toBe(0)
      // Another server's commit is seen at once (what the cluster's reconcile relies on).
      const other = b.another === undefined ? b.store : await b.another()
      await writers[1]?.write(other, 1)
      expect((await b.store.heads(['wf-heads-b'])).get('wf-heads-b')).toBe(4)
    })

    it('commits of many workflows at once all land in order (LevelDB writes them as combined batches)', async () => {
      const writers = Array.from({ length: 8 }, (_, i) => new Writer(`wf-many-${i}`, 5))
      await Promise.all(writers.map(w => w.write(b.store, 12)))
      for (const writer of writers) {
        const stored = await b.store.load(writer.id)
        expect(stored.meta, writer.id).toEqual(writer.meta)
        expect(stateOf(stored), writer.id).toBe(writer.states[writer.meta.head])
      }
      expect(await allVersionsAfter(b.store, 'wf-many-3', 5)).toEqual(range(1, 12))
    })

    it('replay and version rebuild and return every version', async () => {
      const w = new Writer('wf-replay', 4)
      await w.write(b.store, 10)
      expect(await b.store.replay('wf-replay', 0)).toEqual({ keyframe: null, entries: [] })
      for (const v of range(1, 10)) {
        const replay = await b.store.replay('wf-replay', v)
        expect(replay.keyframe?.version ?? 0).toBe(Math.floor(v / 4) * 4)
        expect(stateOf(replay), `state at ${v}`).toBe(w.states[v])
        const record = await b.store.version('wf-replay', v)
        expect(record).toMatchObject({ workflowId: 'wf-replay', version: v, parentVersion: v - 1, checksum: checksumOf(JSON.parse(w.states[v] as string)) })
      }
      expect(await b.store.version('wf-replay', 11)).toBeNull()
      expect(await b.store.version('wf-none', 1)).toBeNull()
    })

    it('versions pages newest first, versionsAfter oldest first', async () => {
      const w = new Writer('wf-pages', 5)
      await w.write(b.store, 12)
      expect((await b.store.versions('wf-pages', { limit: 5 })).map(r => r.version)).toEqual([12, 11, 10, 9, 8])
      expect((await b.store.versions('wf-pages', { before: 8, limit: 5 })).map(r => r.version)).toEqual([7, 6, 5, 4, 3])
      expect((await b.store.versions('wf-pages', { before: 3, limit: 5 })).map(r => r.version)).toEqual([2, 1])
      expect((await b.store.versionsAfter('wf-pages', 0, 5)).map(r => r.version)).toEqual([1, 2, 3, 4, 5])
      expect((await b.store.versionsAfter('wf-pages', 10, 5)).map(r => r.version)).toEqual([11, 12])
      expect(await b.store.versionsAfter('wf-pages', 12, 5)).toEqual([])
      expect(await b.store.versions('wf-none', { limit: 5 })).toEqual([])
    })

    it('archive moves whole keyframe intervals into chunks; every version still replays and pages', async () => {
      const w = new Writer('wf-arch', 5)
      await w.write(b.store, 23)
      await b.store.archive('wf-arch', 0, 5)
      await b.store.archive('wf-arch', 5, 10)
      expect(await b.store.archivedThrough('wf-arch')).toBe(10)
      expect(await b.store.countLog('wf-arch')).toBe(13)
      expect(await b.store.keyframes('wf-arch')).toEqual([10, 15, 20])
      for (const v of range(1, 23)) {
        expect(stateOf(await b.store.replay('wf-arch', v)), `state at ${v}`).toBe(w.states[v])
        expect((await b.store.version('wf-arch', v))?.version).toBe(v)
      }
      // Pages that start in the hot log and continue through both chunks, and the reverse.
      expect(await allVersions(b.store, 'wf-arch', 4)).toEqual(range(1, 23).reverse())
      expect(await allVersions(b.store, 'wf-arch', 100)).toEqual(range(1, 23).reverse())
      expect(await allVersionsAfter(b.store, 'wf-arch', 4)).toEqual(range(1, 23))
      expect((await b.store.versions('wf-arch', { before: 7, limit: 3 })).map(r => r.version)).toEqual([6, 5, 4])
      expect((await b.store.versionsAfter('wf-arch', 3, 4)).map(r => r.version)).toEqual([4, 5, 6, 7])
      const stored = await b.store.load('wf-arch')
      expect(stored.keyframe?.version).toBe(20)
      expect(stateOf(stored)).toBe(w.states[23])
      // Writing goes on after archiving.
      await w.write(b.store, 2)
      expect(stateOf(await b.store.load('wf-arch'))).toBe(w.states[25])
      expect(await b.store.scan()).toEqual([])
    })

    it('snapshots: put, get, list by creation time, delete', async () => {
      const w = new Writer('wf-snap')
      await w.write(b.store, 3)
      await b.store.putSnapshot(snapshot('wf-snap', 'snap-b', 200, 2))
      await b.store.putSnapshot(snapshot('wf-snap', 'snap-a', 300, 3))
      await b.store.putSnapshot(snapshot('wf-snap', 'snap-c', 100, 1))
      await b.store.putSnapshot(snapshot('wf-other', 'snap-x', 100, 0))
      expect(await b.store.getSnapshot('wf-snap', 'snap-a')).toEqual(snapshot('wf-snap', 'snap-a', 300, 3))
      expect(await b.store.getSnapshot('wf-snap', 'snap-x')).toBeNull()
      expect((await b.store.listSnapshots('wf-snap')).map(s => s.id)).toEqual(['snap-c', 'snap-b', 'snap-a'])
      await b.store.deleteSnapshots('wf-snap', ['snap-b', 'snap-c', 'snap-missing'])
      await b.store.deleteSnapshots('wf-snap', [])
      expect((await b.store.listSnapshots('wf-snap')).map(s => s.id)).toEqual(['snap-a'])
      expect(await b.store.getSnapshot('wf-snap', 'snap-b')).toBeNull()
      expect((await b.store.listSnapshots('wf-other')).map(s => s.id)).toEqual(['snap-x'])
    })

    it('conflicts and violations: stored with their version, listed by number, resolutions overwrite', async () => {
      const w = new Writer('wf-conf')
      await w.write(b.store, 12, { conflictEvery: 1, violationEvery: 4 })
      const conflicts = await b.store.listConflicts('wf-conf')
      expect(conflicts.map(c => c.id)).toEqual(range(1, 12)) // numeric order, not text order
      expect(conflicts.map(c => c.version)).toEqual(range(1, 12))
      expect((await b.store.listViolations('wf-conf')).map(v => [v.id, v.version])).toEqual([[1, 4], [2, 8], [3, 12]])
      const resolved = { ...(conflicts[1] as ConflictRecord), resolution: { value: 'x', version: 12, by: 'judge' } }
      await b.store.putConflict(resolved)
      expect((await b.store.listConflicts('wf-conf'))[1]).toEqual(resolved)
      // With a meta: both in one write.
      const meta = { ...w.meta, conflicts: 13, updatedAt: 5000 }
      const extra: ConflictRecord = { ...(conflicts[0] as ConflictRecord), id: 13, version: 12 }
      await b.store.putConflict(extra, meta)
      expect(await b.store.getMeta('wf-conf')).toEqual(meta)
      expect((await b.store.listConflicts('wf-conf')).map(c => c.id)).toEqual(range(1, 13))
      expect(await b.store.listConflicts('wf-none')).toEqual([])
      expect(await b.store.listViolations('wf-none')).toEqual([])
    })

    it('putMeta, listWorkflows in id order, deleteWorkflow removes everything of one workflow', async () => {
      const a = new Writer('wf-b', 5)
      const c = new Writer('wf-a', 5)
      await a.write(b.store, 11, { conflictEvery: 3, violationEvery: 5 })
      await c.write(b.store, 3)
      await b.store.archive('wf-b', 0, 5)
      await b.store.putSnapshot(snapshot('wf-b', 'snap-1', 1, 2))
      const touched = { ...c.meta, updatedAt: 1 }
      await b.store.putMeta(touched)
      expect(await b.store.listWorkflows()).toEqual([touched, a.meta])

      await b.store.deleteWorkflow('wf-b')
      expect(await b.store.getMeta('wf-b')).toBeNull()
      expect(await b.store.load('wf-b')).toEqual({ meta: null, keyframe: null, entries: [] })
      expect(await b.store.countLog('wf-b')).toBe(0)
      expect(await b.store.archivedThrough('wf-b')).toBe(0)
      expect(await b.store.keyframes('wf-b')).toEqual([])
      expect(await b.store.versions('wf-b', { limit: 10 })).toEqual([])
      expect(await b.store.version('wf-b', 2)).toBeNull()
      expect(await b.store.listSnapshots('wf-b')).toEqual([])
      expect(await b.store.listConflicts('wf-b')).toEqual([])
      expect(await b.store.listViolations('wf-b')).toEqual([])
      expect(await b.store.listWorkflows()).toEqual([touched])
      expect(stateOf(await b.store.load('wf-a'))).toBe(c.states[3])
      await b.store.deleteWorkflow('wf-none')

      // The id can be used again, from version 1.
      const again = new Writer('wf-b')
      await again.write(b.store, 2)
      expect(stateOf(await b.store.load('wf-b'))).toBe(again.states[2])
      expect(await b.store.scan()).toEqual([])
    })

    it('head check: of two commits of the same version exactly one wins, and a version must follow the head', async () => {
      const w = new Writer('wf-head')
      await w.write(b.store, 1)
      const rival = new Writer('wf-head', 5, 'agent-b')
      rival.doc.transact(() => { Y.applyUpdate(rival.doc, Y.encodeStateAsUpdate(w.doc)) })
      rival.meta = w.meta
      const mine = w.next(s => { s.set('who', 'a') })
      const theirs = rival.next(s => { s.set('who', 'b') })
      const other = b.another === undefined ? b.store : await b.another()
      const results = await Promise.allSettled([b.store.commit('wf-head', mine), other.commit('wf-head', theirs)])
      expect(results.filter(r => r.status === 'fulfilled')).toHaveLength(1)
      const lost = results.find(r => r.status === 'rejected') as PromiseRejectedResult
      expect(lost.reason).toBeInstanceOf(HeadMovedError)
      expect(lost.reason).toMatchObject({ code: 'HEAD_MOVED', expected: 1, actual: 2 })
      const winner = results[0]?.status === 'fulfilled' ? mine : theirs
      expect(await b.store.version('wf-head', 2)).toEqual(winner.record)
      expect((await b.store.getMeta('wf-head'))?.head).toBe(2)
      expect(await b.store.countLog('wf-head')).toBe(2)

      // A retry of the commit that landed is a no-op; the loser's stays refused.
      await b.store.commit('wf-head', winner)
      await expect(b.store.commit('wf-head', winner === mine ? theirs : mine)).rejects.toMatchObject({ code: 'HEAD_MOVED' })
      // Gaps and rewrites are refused, and nothing of them is stored.
      const gap = { ...winner, record: { ...winner.record, version: 5, parentVersion: 4 }, meta: { ...winner.meta, head: 5 } }
      await expect(b.store.commit('wf-head', gap)).rejects.toMatchObject({ code: 'HEAD_MOVED', expected: 4, actual: 2 })
      const rewrite = { ...winner, record: { ...winner.record, version: 1, parentVersion: 0, description: 'rewrite' }, meta: { ...winner.meta, head: 1 } }
      await expect(b.store.commit('wf-head', rewrite)).rejects.toBeInstanceOf(HeadMovedError)
      expect(await b.store.version('wf-head', 5)).toBeNull()
      expect((await b.store.version('wf-head', 1))?.description).toBe('version 1')
      expect((await b.store.getMeta('wf-head'))?.head).toBe(2)
      expect(await b.store.countLog('wf-head')).toBe(2)
      // A first version on a fresh id is checked too.
      const first = new Writer('wf-fresh').next(s => { s.set('x', 1) })
      await expect(b.store.commit('wf-fresh', { ...first, record: { ...first.record, version: 2, parentVersion: 1 }, meta: { ...first.meta, head: 2 } }))
        .rejects.toMatchObject({ code: 'HEAD_MOVED', expected: 1, actual: 0 })
    })

    it('writers racing for the head (two servers) produce a gapless history', async () => {
      const other = b.another === undefined ? b.store : await b.another()
      const race = async (store: Store, agent: string): Promise<number> => {
        let won = 0
        while (won < 15) {
          // Like a server reloading after HEAD_MOVED: rebuild from what is stored, then write.
          const stored = await store.load('wf-race')
          const w = new Writer('wf-race', 5, agent)
          if (stored.keyframe !== null) Y.applyUpdate(w.doc, stored.keyframe.state)
          for (const e of stored.entries) for (const u of e.updates) Y.applyUpdate(w.doc, u)
          if (stored.meta !== null) w.meta = stored.meta
          const c = w.next(s => { s.set(agent, won) })
          try {
            await store.commit('wf-race', c)
            won++
          } catch (err) {
            if (!(err instanceof HeadMovedError)) throw err
          }
        }
        return won
      }
      expect(await Promise.all([race(b.store, 'a'), race(other, 'b')])).toEqual([15, 15])
      const records = await b.store.versions('wf-race', { limit: 100 })
      expect(records.map(r => r.version)).toEqual(range(1, 30).reverse())
      expect(records.every(r => r.parentVersion === r.version - 1)).toBe(true)
      const state = JSON.parse(stateOf(await b.store.load('wf-race')))
      expect(state).toMatchObject({ a: 14, b: 14 })
      expect(checksumOf(state)).toBe(records[0]?.checksum)
    })

    // Only backends that hold bytes can be damaged underneath (the memory store holds objects).
    if (options.corruption !== false) it('corruption: a flipped byte is CorruptDataError on read and reported by scan, other workflows unaffected', async () => {
      const corrupt = b.corrupt
      if (corrupt === undefined) expect.fail(`${name}: the corruption case needs the backend's corrupt() (or pass { corruption: false })`)
      const w = new Writer('wf-bad', 5)
      await w.write(b.store, 13, { conflictEvery: 2, violationEvery: 3 })
      await b.store.archive('wf-bad', 0, 5)
      await b.store.putSnapshot(snapshot('wf-bad', 'snap-1', 1, 3))
      const good = new Writer('wf-good', 5)
      await good.write(b.store, 7)
      expect(await b.store.scan()).toEqual([])

      await corrupt('wf-bad', 'log', 12)
      await expect(b.store.load('wf-bad')).rejects.toBeInstanceOf(CorruptDataError)
      await expect(b.store.load('wf-bad')).rejects.toMatchObject({ code: 'CORRUPT_DATA', details: { key: keys.key('wf-bad', 'log', 12) } })
      await expect(b.store.replay('wf-bad', 12)).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      expect(stateOf(await b.store.replay('wf-bad', 11))).toBe(w.states[11])

      await corrupt('wf-bad', 'kf', 10)
      await corrupt('wf-bad', 'ver', 7)
      await corrupt('wf-bad', 'arch', 5)
      await corrupt('wf-bad', 'snap', 'snap-1')
      await corrupt('wf-bad', 'conf', 4)
      await corrupt('wf-bad', 'viol', 2)
      await corrupt('wf-bad', 'meta')
      await expect(b.store.replay('wf-bad', 10)).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      await expect(b.store.version('wf-bad', 7)).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      await expect(b.store.replay('wf-bad', 3)).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      await expect(b.store.version('wf-bad', 3)).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      await expect(b.store.getSnapshot('wf-bad', 'snap-1')).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      await expect(b.store.listConflicts('wf-bad')).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      await expect(b.store.listViolations('wf-bad')).rejects.toMatchObject({ code: 'CORRUPT_DATA' })
      await expect(b.store.getMeta('wf-bad')).rejects.toMatchObject({ code: 'CORRUPT_DATA' })

      const problems = await b.store.scan()
      expect(problems.map(p => p.key).sort()).toEqual([
        keys.metaKey('wf-bad'),
        keys.key('wf-bad', 'arch', 5),
        keys.key('wf-bad', 'conf', 4),
        keys.key('wf-bad', 'kf', 10),
        keys.key('wf-bad', 'log', 12),
        keys.key('wf-bad', 'snap', 'snap-1'),
        keys.key('wf-bad', 'ver', 7),
        keys.key('wf-bad', 'viol', 2)
      ].sort())
      for (const p of problems) expect(p.problem).toMatch(/checksum mismatch/)
      expect(stateOf(await b.store.load('wf-good'))).toBe(good.states[7])
    })
    if (options.corruption !== false) it('archiving over a damaged record, log entry or keyframe refuses with CorruptDataError and moves nothing', async () => {
      const corrupt = b.corrupt
      if (corrupt === undefined) expect.fail(`${name}: the corruption case needs the backend's corrupt() (or pass { corruption: false })`)
      const w = new Writer('wf-arch-bad', 5)
      await w.write(b.store, 17)
      await corrupt('wf-arch-bad', 'ver', 3)
      await corrupt('wf-arch-bad', 'log', 8)
      await corrupt('wf-arch-bad', 'kf', 10)
      await expect(b.store.archive('wf-arch-bad', 0, 5)).rejects.toMatchObject({ code: 'CORRUPT_DATA', details: { key: keys.key('wf-arch-bad', 'ver', 3) } })
      await expect(b.store.archive('wf-arch-bad', 5, 10)).rejects.toMatchObject({ code: 'CORRUPT_DATA', details: { key: keys.key('wf-arch-bad', 'log', 8) } })
      // The keyframe is copied into the chunk still compressed: its frame's checksum is the check.
      await expect(b.store.archive('wf-arch-bad', 10, 15)).rejects.toMatchObject({ code: 'CORRUPT_DATA', details: { key: keys.key('wf-arch-bad', 'kf', 10) } })
      expect(await b.store.archivedThrough('wf-arch-bad')).toBe(0)
      expect(await b.store.countLog('wf-arch-bad')).toBe(17)
      expect((await b.store.version('wf-arch-bad', 4))?.version).toBe(4)
      expect(stateOf(await b.store.replay('wf-arch-bad', 7))).toBe(w.states[7])
    })
  })
}
