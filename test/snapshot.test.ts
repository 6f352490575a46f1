/**
 * Structural sharing of `handle.state`: a change keeps the identity of every subtree it did not
 * touch (so `===` means unchanged), for local and remote edits, deletes, array inserts, concurrent
 * edits and schemas with defaults; and the incremental snapshot always equals a full read.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { z } from 'zod'
import { startServer, removeTempDirs, type TestServer } from './helpers/server.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { createRandom, seedFrom } from './helpers/random.ts'
import { createSnapshot } from '../src/client/snapshot.ts'
import { readState, setAt, stateRoot, toYValue } from '../src/model/json-yjs.ts'
import type { JsonObject, JsonValue } from '../src/model/json.ts'
import type { WorkflowHandle } from '../src/node/index.ts'

let srv: TestServer | null = null
const shared = async (): Promise<TestServer> => {
  srv ??= await startServer()
  return srv
}
afterEach(async () => { await closeClients() })
afterAll(async () => {
  await srv?.stop()
  await removeTempDirs()
})

let counter = 0
const task = (i: number): JsonObject => ({ id: i, title: `task ${i}`, status: 'todo', tags: ['a', 'b'] })
const initial = (): JsonObject => ({
  config: { model: 'small', limits: { tokens: 1000, steps: 10 } },
  tasks: [0, 1, 2, 3, 4].map(task),
  notes: 'hello'
})

interface State {
  config: { model: string, limits: { tokens: number, steps: number } }
  tasks: Array<{ id: number, title: string, status: string, tags: string[] }>
  notes: string
}
const st = (h: WorkflowHandle): State => h.state as unknown as State

/** Two synced agents on a fresh workflow holding `initial()`. */
const pair = async (extra = {}): Promise<[WorkflowHandle, WorkflowHandle]> => {
  const s = await shared()
  const id = `snapshot-${++counter}`
  const a = sdkAgent(s.url, id, 'agent-a', extra) as WorkflowHandle
  const b = sdkAgent(s.url, id, 'agent-b', extra) as WorkflowHandle
  await Promise.all([a.whenSynced(), b.whenSynced()])
  a.update(() => initial())
  await waitFor(() => st(b).tasks?.length === 5, { what: 'b sees the initial state' })
  return [a, b]
}

describe('structural sharing of state', () => {
  it('a remote edit under /tasks/3 keeps /config and the other tasks', async () => {
    const [a, b] = await pair()
    const before = st(a)
    expect(st(a)).toBe(before) // reading twice without a change: the same object
    b.patch([{ op: 'replace', path: '/tasks/3/status', value: 'done' }])
    await waitFor(() => st(a).tasks[3]?.status === 'done', { what: 'a sees the edit' })
    const after = st(a)
    expect(after).not.toBe(before)
    expect(after.config).toBe(before.config)
    expect(after.tasks).not.toBe(before.tasks)
    for (const i of [0, 1, 2, 4]) expect(after.tasks[i]).toBe(before.tasks[i])
    expect(after.tasks[3]).not.toBe(before.tasks[3])
    expect(after.tasks[3]?.tags).toBe(before.tasks[3]?.tags)
    expect(Object.isFrozen(after) && Object.isFrozen(after.tasks) && Object.isFrozen(after.tasks[3])).toBe(true)
    expect(after).toEqual(readState(a.doc))
  })

  it('a local update keeps untouched subtrees too', async () => {
    const [a] = await pair()
    const before = st(a)
    a.update(d => { (d as unknown as State).config.model = 'large' })
    const after = st(a)
    expect(after.config.model).toBe('large')
    expect(after.config).not.toBe(before.config)
    expect(after.config.limits).toBe(before.config.limits)
    expect(after.tasks).toBe(before.tasks)
  })

  it('deletes and array inserts shift the surviving elements, identities intact', async () => {
    const [a, b] = await pair()
    const before = st(a)
    b.patch([{ op: 'remove', path: '/tasks/1' }])
    await waitFor(() => st(a).tasks.length === 4, { what: 'a sees the delete' })
    const del = st(a)
    expect(del.tasks.map(t => t.id)).toEqual([0, 2, 3, 4])
    expect(del.tasks[0]).toBe(before.tasks[0])
    expect(del.tasks[1]).toBe(before.tasks[2])
    expect(del.tasks[3]).toBe(before.tasks[4])
    expect(del.config).toBe(before.config)

    b.patch([{ op: 'add', path: '/tasks/0', value: task(9) }, { op: 'add', path: '/tasks/-', value: task(10) }])
    await waitFor(() => st(a).tasks.length === 6, { what: 'a sees the inserts' })
    const ins = st(a)
    expect(ins.tasks.map(t => t.id)).toEqual([9, 0, 2, 3, 4, 10])
    for (let i = 0; i < 4; i++) expect(ins.tasks[i + 1]).toBe(del.tasks[i])

    b.patch([{ op: 'remove', path: '/notes' }, { op: 'add', path: '/extra', value: { x: 1 } }])
    await waitFor(() => st(a).notes === undefined, { what: 'a sees the key delete' })
    const keys = st(a)
    expect(Object.keys(keys)).toEqual(['config', 'extra', 'tasks'])
    expect(keys.tasks).toBe(ins.tasks)
    expect(keys.config).toBe(before.config)
    expect(keys).toEqual(readState(a.doc))
  })

  it('concurrent remote edits merge, and what neither touched keeps its identity on both sides', async () => {
    const [a, b] = await pair()
    await waitForConvergence([() => a.state, () => b.state])
    const beforeA = st(a)
    const beforeB = st(b)
    // Both write before either sees the other's edit.
    a.patch([{ op: 'replace', path: '/config/model', value: 'large' }, { op: 'replace', path: '/tasks/0/status', value: 'doing' }])
    b.patch([{ op: 'remove', path: '/tasks/4' }, { op: 'replace', path: '/tasks/2/title', value: 'renamed' }])
    await waitForConvergence([() => a.state, () => b.state])
    for (const [h, before] of [[a, beforeA], [b, beforeB]] as const) {
      const after = st(h)
      expect(after.config.model).toBe('large')
      expect(after.tasks.map(t => t.status + t.title)).toEqual(['doingtask 0', 'todotask 1', 'todorenamed', 'todotask 3'])
      expect(after.config.limits).toBe(before.config.limits)
      expect(after.tasks[1]).toBe(before.tasks[1])
      expect(after.tasks[3]).toBe(before.tasks[3])
      expect(after.tasks[2]?.tags).toBe(before.tasks[2]?.tags)
      expect(after).toEqual(readState(h.doc))
    }
  })

  it('works with a schema that has defaults', async () => {
    const schema = z.object({
      config: z.object({ model: z.string().default('small'), limits: z.object({ tokens: z.number(), steps: z.number() }) }),
      tasks: z.array(z.object({ id: z.number(), title: z.string(), status: z.string().default('todo'), tags: z.array(z.string()).default([]) })).default([]),
      notes: z.string().default('')
    })
    const [a, b] = await pair({ schema })
    const before = st(a)
    b.update(d => { (d as unknown as State).tasks[1]!.status = 'done' })
    await waitFor(() => st(a).tasks[1]?.status === 'done', { what: 'a sees the edit' })
    const after = st(a)
    expect(after.config).toBe(before.config)
    expect(after.tasks[0]).toBe(before.tasks[0])
    expect(after.tasks[2]).toBe(before.tasks[2])
    expect(after.tasks[1]?.tags).toBe(before.tasks[1]?.tags)
  })

  it('a remote edit of one field costs no rebuild of a 2,000-task state (identity of all others kept)', async () => {
    const [a, b] = await pair()
    b.update(d => { (d as unknown as State).tasks = Array.from({ length: 2000 }, (_, i) => task(i)) as State['tasks'] })
    await waitFor(() => st(a).tasks.length === 2000, { what: 'a sees 2,000 tasks' })
    const before = st(a)
    b.patch([{ op: 'replace', path: '/tasks/1000/status', value: 'done' }])
    await waitFor(() => st(a).tasks[1000]?.status === 'done', { what: 'a sees the edit' })
    const after = st(a)
    let kept = 0
    for (let i = 0; i < 2000; i++) if (after.tasks[i] === before.tasks[i]) kept++
    expect(kept).toBe(1999)
  })
})

describe('incremental snapshot equals a full read (randomized, two concurrently edited docs)', () => {
  const paths = (value: JsonValue, at: Array<string | number> = []): Array<Array<string | number>> => {
    const out: Array<Array<string | number>> = [at]
    if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])))
    else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]))
    return out
  }
  const containerAt = (doc: Y.Doc, path: Array<string | number>): unknown => {
    let cur: unknown = stateRoot(doc)
    for (const seg of path) cur = cur instanceof Y.Map ? cur.get(String(seg)) : cur instanceof Y.Array ? cur.get(Number(seg)) : undefined
    return cur
  }

  it('after every sync, on both docs', () => {
    const rnd = createRandom(seedFrom('SNAPSHOT_SEED', 'snapshot fuzz'))
    const docs = [new Y.Doc(), new Y.Doc()]
    const snaps = docs.map(d => {
      const snap = createSnapshot(stateRoot(d))
      stateRoot(d).observeDeep(events => { snap.apply(events) })
      snap.read()
      return snap
    })
    const value = (depth: number): JsonValue => {
      const kind = depth > 2 ? 0 : rnd.int(3)
      if (kind === 1) return Object.fromEntries(Array.from({ length: rnd.int(3) }, () => [`k${rnd.int(5)}`, value(depth + 1)]))
      if (kind === 2) return Array.from({ length: rnd.int(3) }, () => value(depth + 1))
      return rnd.chance(0.5) ? rnd.int(100) : `s${rnd.int(10)}`
    }
    const edit = (doc: Y.Doc): void => {
      const json = readState(doc)
      const containers = paths(json).filter(p => {
        const c = containerAt(doc, p)
        return c instanceof Y.Map || c instanceof Y.Array
      })
      const target = containerAt(doc, rnd.pick(containers)) as Y.Map<unknown> | Y.Array<unknown>
      if (target instanceof Y.Map) {
        const key = `k${rnd.int(5)}`
        if (rnd.chance(0.3)) target.delete(key)
        else setAt(target, key, value(0))
      } else if (target.length > 0 && rnd.chance(0.4)) target.delete(rnd.int(target.length), 1)
      else if (target.length > 0 && rnd.chance(0.3)) setAt(target, rnd.int(target.length), value(0))
      else target.insert(rnd.int(target.length + 1), [toYValue(value(0))])
    }
    for (let round = 0; round < 300; round++) {
      for (const doc of docs) {
        const n = rnd.int(3)
        doc.transact(() => { for (let i = 0; i < n; i++) edit(doc) })
      }
      if (rnd.chance(0.7)) {
        const [x, y] = docs as [Y.Doc, Y.Doc]
        const ux = Y.encodeStateAsUpdate(x, Y.encodeStateVector(y))
        const uy = Y.encodeStateAsUpdate(y, Y.encodeStateVector(x))
        Y.applyUpdate(y, ux)
        Y.applyUpdate(x, uy)
        expect(readState(x)).toEqual(readState(y))
      }
      docs.forEach((doc, i) => {
        const snap = snaps[i]!.read()
        expect(snap, `round ${round}, doc ${i}`).toEqual(readState(doc))
        expect(JSON.stringify(snap)).toBe(JSON.stringify(readState(doc))) // same key order too
        expect(paths(snap).every(p => {
          let cur: unknown = snap
          for (const seg of p) cur = (cur as Record<string, unknown>)[seg as string]
          return cur === null || typeof cur !== 'object' || Object.isFrozen(cur)
        })).toBe(true)
      })
    }
  })
})
