/**
 * Unit tests of the JSON <-> Yjs mapping: plain Y.Doc instances, no server.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import jsonpatch from 'fast-json-patch'
import type { Operation } from 'fast-json-patch'
import { assertJson, deepEqual, toPointer, type JsonObject, type JsonValue } from '../src/model/json.ts'
import { readState, setMapContents, stateRoot, toYValue, yToJson } from '../src/model/json-yjs.ts'
import { applyPatchToJson, applyPatchToYjs } from '../src/model/patch.ts'
import { eventsToOps } from '../src/model/changes.ts'
import { AccordError, InvalidJsonError, InvalidPatchError } from '../src/model/errors.ts'

// ---------------------------------------------------------------------------------------------
// helpers

/** A document whose state root holds `json`. */
const docWith = (json: JsonObject, clientID?: number): Y.Doc => {
  const doc = new Y.Doc()
  if (clientID !== undefined) doc.clientID = clientID
  doc.transact(() => { setMapContents(stateRoot(doc), json) })
  return doc
}

/** Sends everything `from` has and `to` lacks. */
const sync = (from: Y.Doc, to: Y.Doc): void => {
  Y.applyUpdate(to, Y.encodeStateAsUpdate(from, Y.encodeStateVector(to)))
}

/** A fork of `doc` with its own client id. */
const fork = (doc: Y.Doc, clientID?: number): Y.Doc => {
  const copy = new Y.Doc()
  if (clientID !== undefined) copy.clientID = clientID
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  return copy
}

/** Writes `next` as the full desired state, as the SDK's update() does. */
const write = (doc: Y.Doc, next: JsonObject): void => {
  doc.transact(() => { setMapContents(stateRoot(doc), next) })
}

/** Edits a JSON copy of the doc's state and writes it back with setMapContents. */
const edit = (doc: Y.Doc, fn: (draft: any) => void): void => {
  const draft = structuredClone(readState(doc))
  fn(draft)
  write(doc, draft)
}

const catchError = (fn: () => unknown): unknown => {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

/** Tiny deterministic PRNG. */
const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---------------------------------------------------------------------------------------------

describe('assertJson', () => {
  const rejects = (value: unknown, path: string, reason: RegExp): void => {
    const err = catchError(() => { assertJson(value) })
    expect(err).toBeInstanceOf(InvalidJsonError)
    expect(err).toBeInstanceOf(AccordError)
    const e = err as InvalidJsonError
    expect(e.code).toBe('INVALID_JSON')
    expect(e.path).toBe(path)
    expect(e.message).toMatch(reason)
  }

  it('rejects functions', () => {
    rejects({ a: { run: () => 1 } }, '/a/run', /function/)
    rejects(() => 1, '', /function/)
  })

  it('rejects undefined inside arrays, and as the value itself', () => {
    rejects({ list: [1, undefined, 3] }, '/list/1', /undefined/)
    rejects(undefined, '', /undefined/)
  })

  it('rejects NaN and Infinity', () => {
    rejects({ n: NaN }, '/n', /NaN/)
    rejects({ deep: [{ x: Infinity }] }, '/deep/0/x', /Infinity/)
    rejects([-Infinity], '/0', /Infinity/)
  })

  it('rejects cycles, but accepts a value shared by two branches', () => {
    const cyclic: any = { a: { b: {} } }
    cyclic.a.b.back = cyclic
    rejects(cyclic, '/a/b/back', /cycle/)
    const arr: any[] = [1]
    arr.push(arr)
    rejects({ arr }, '/arr/1', /cycle/)

    const shared = { x: 1 }
    expect(() => { assertJson({ left: shared, right: shared, list: [shared, shared] }) }).not.toThrow()
  })

  it('rejects class instances (Date, Map, a custom class)', () => {
    class Task { title = 't' }
    rejects({ when: new Date(0) }, '/when', /Date/)
    rejects({ m: new Map([['k', 1]]) }, '/m', /Map/)
    rejects({ list: [new Task()] }, '/list/0', /Task/)
    rejects({ s: new Set() }, '/s', /Set/)
  })

  it('rejects bigint and symbols', () => {
    rejects({ big: 10n }, '/big', /bigint/)
    rejects({ sym: Symbol('s') }, '/sym', /symbol/)
  })

  it('rejects sparse arrays, pointing at the array', () => {
    // eslint-disable-next-line no-sparse-arrays
    rejects({ arr: [1, , 3] }, '/arr', /hole at index 1/)
    rejects({ arr: new Array(2) }, '/arr', /hole at index 0/)
  })

  it('escapes ~ and / in the error pointer', () => {
    rejects({ 'a/b': { 'c~d': NaN } }, '/a~1b/c~0d', /NaN/)
    expect(toPointer(['a/b', 'c~d', 0])).toBe('/a~1b/c~0d/0')
  })

  it('accepts nested plain JSON, including null-prototype objects', () => {
    const bare = Object.create(null) as Record<string, unknown>
    bare.k = 'v'
    const value = {
      s: 'x', n: -1.5, z: 0, t: true, f: false, nil: null,
      list: [1, 'two', [3, [4]], { five: 5 }, [], {}],
      obj: { nested: { deeper: { deepest: [null] } } },
      bare
    }
    expect(() => { assertJson(value) }).not.toThrow()
    expect(() => { assertJson([]) }).not.toThrow()
    expect(() => { assertJson('scalar') }).not.toThrow()
  })

  it('treats undefined object properties as absent', () => {
    expect(() => { assertJson({ a: undefined, b: { c: undefined, d: 1 } }) }).not.toThrow()
    expect(deepEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true)

    const doc = docWith({ keep: 1, drop: 2 })
    write(doc, { keep: 1, drop: undefined } as unknown as JsonObject)
    expect(readState(doc)).toEqual({ keep: 1 })
    expect(Object.keys(readState(doc))).toEqual(['keep'])
    const other = new Y.Doc()
    other.transact(() => { stateRoot(other).set('v', toYValue({ a: 1, b: undefined } as unknown as JsonValue)) })
    expect(yToJson(stateRoot(other).get('v'))).toEqual({ a: 1 })
  })
})

// ---------------------------------------------------------------------------------------------

describe('setMapContents makes minimal changes', () => {
  it('writes exactly the desired JSON, and nothing when nothing changed', () => {
    const doc = docWith({ a: { x: 1, list: [1, 2, 3] }, b: 'b' })
    const target = { a: { x: 2, list: [0, 1, 3, 4], extra: { e: [] } }, c: null }
    write(doc, target)
    expect(readState(doc)).toEqual(target)

    let updates = 0
    doc.on('update', () => { updates++ })
    write(doc, structuredClone(target))
    expect(updates).toBe(0)
  })

  it('keeps nested containers: an edit of /a/x does not replace /a', () => {
    const doc = docWith({ a: { x: 0, y: 0 } })
    const before = stateRoot(doc).get('a')
    edit(doc, d => { d.a.x = 1 })
    expect(stateRoot(doc).get('a')).toBe(before)
  })

  it('concurrent edits of /a/x and /a/y both survive', () => {
    const a = docWith({ a: { x: 0, y: 0 }, other: [1] })
    const b = fork(a)
    write(a, { a: { x: 1, y: 0 }, other: [1] })
    write(b, { a: { x: 0, y: 2 }, other: [1] })
    sync(a, b)
    sync(b, a)
    expect(readState(a)).toEqual({ a: { x: 1, y: 2 }, other: [1] })
    expect(readState(b)).toEqual(readState(a))
  })

  it('concurrent edits of different elements of one array of objects both survive', () => {
    const a = docWith({ tasks: [{ id: 1, status: 'todo' }, { id: 2, status: 'todo' }, { id: 3, status: 'todo' }] })
    const b = fork(a)
    edit(a, d => { d.tasks[0].status = 'done'; d.tasks[0].by = 'a' })
    edit(b, d => { d.tasks[2].status = 'doing' })
    sync(a, b)
    sync(b, a)
    const expected = {
      tasks: [{ id: 1, status: 'done', by: 'a' }, { id: 2, status: 'todo' }, { id: 3, status: 'doing' }]
    }
    expect(readState(a)).toEqual(expected)
    expect(readState(b)).toEqual(expected)
  })

  it('one agent appending while another edits an element: both survive', () => {
    const a = docWith({ tasks: [{ id: 1, status: 'todo' }, { id: 2, status: 'todo' }] })
    const b = fork(a)
    edit(a, d => { d.tasks.push({ id: 3, status: 'todo' }) })
    edit(b, d => { d.tasks[1].status = 'done' })
    sync(b, a)
    sync(a, b)
    const expected = { tasks: [{ id: 1, status: 'todo' }, { id: 2, status: 'done' }, { id: 3, status: 'todo' }] }
    expect(readState(a)).toEqual(expected)
    expect(readState(b)).toEqual(expected)
  })

  it('one agent removing an element while another edits a later one: both survive', () => {
    const a = docWith({ tasks: [{ id: 1 }, { id: 2 }, { id: 3 }] })
    const b = fork(a)
    edit(a, d => { d.tasks.splice(0, 1) })
    edit(b, d => { d.tasks[2].done = true })
    sync(a, b)
    sync(b, a)
    expect(readState(a)).toEqual({ tasks: [{ id: 2 }, { id: 3, done: true }] })
    expect(readState(b)).toEqual(readState(a))
  })

  it('the same key written concurrently ends identical everywhere, whichever order updates arrive in', () => {
    const scenario = (aFirst: boolean): JsonObject[] => {
      const a = docWith({ k: 'init', nested: { v: 0 } }, 1001)
      const b = fork(a, 2002)
      const c = fork(a, 3003)
      write(a, { k: 'from-a', nested: { v: 'a' } })
      write(b, { k: 'from-b', nested: { v: 'b' } })
      const ua = Y.encodeStateAsUpdate(a)
      const ub = Y.encodeStateAsUpdate(b)
      if (aFirst) {
        Y.applyUpdate(b, ua); Y.applyUpdate(c, ua); Y.applyUpdate(a, ub); Y.applyUpdate(c, ub)
      } else {
        Y.applyUpdate(a, ub); Y.applyUpdate(c, ub); Y.applyUpdate(b, ua); Y.applyUpdate(c, ua)
      }
      return [readState(a), readState(b), readState(c)]
    }
    const one = scenario(true)
    const two = scenario(false)
    for (const s of [...one, ...two]) expect(s).toEqual(one[0])
    expect(['from-a', 'from-b']).toContain(one[0].k)
    expect(['a', 'b']).toContain((one[0].nested as JsonObject).v)
  })

  it('readState lists keys in sorted order regardless of arrival order', () => {
    const a = new Y.Doc()
    const b = new Y.Doc()
    a.transact(() => { stateRoot(a).set('zeta', 1) })
    b.transact(() => { stateRoot(b).set('alpha', 2) })
    sync(a, b)
    sync(b, a)
    expect(JSON.stringify(readState(a))).toBe(JSON.stringify(readState(b)))
    expect(Object.keys(readState(a))).toEqual(['alpha', 'zeta'])
  })
})

// ---------------------------------------------------------------------------------------------

describe('applyPatchToJson + applyPatchToYjs', () => {
  const base = (): JsonObject => ({
    tasks: [{ id: 1, title: 'plan' }, { id: 2, title: 'build' }],
    meta: { owner: 'ann', tags: ['x', 'y'] }
  })

  /** Applies `ops` both ways and checks both give `expected`. */
  const check = (ops: Operation[], expected: JsonObject, initial: JsonObject = base()): void => {
    const json = applyPatchToJson(initial, ops)
    expect(json).toEqual(expected)
    const doc = docWith(initial)
    doc.transact(() => { applyPatchToYjs(stateRoot(doc), ops) })
    expect(readState(doc)).toEqual(expected)
  }

  it('add: nested map key, existing key, array index, "/-" append, escaped key', () => {
    const b = base() as any
    check([{ op: 'add', path: '/meta/due', value: { day: 3 } }], { ...b, meta: { ...b.meta, due: { day: 3 } } })
    check([{ op: 'add', path: '/meta/owner', value: 'bob' }], { ...b, meta: { ...b.meta, owner: 'bob' } })
    check([{ op: 'add', path: '/tasks/1', value: { id: 9 } }], { ...b, tasks: [b.tasks[0], { id: 9 }, b.tasks[1]] })
    check([{ op: 'add', path: '/tasks/-', value: { id: 3, sub: [1] } }], { ...b, tasks: [...b.tasks, { id: 3, sub: [1] }] })
    check([{ op: 'add', path: '/meta/tags/-', value: 'z' }], { ...b, meta: { ...b.meta, tags: ['x', 'y', 'z'] } })
    check([{ op: 'add', path: '/meta/a~1b~0c', value: 1 }], { ...b, meta: { ...b.meta, 'a/b~c': 1 } })
  })

  it('remove: map key, array element, whole subtree', () => {
    const b = base() as any
    check([{ op: 'remove', path: '/tasks/0' }], { ...b, tasks: [b.tasks[1]] })
    check([{ op: 'remove', path: '/meta/tags/1' }], { ...b, meta: { ...b.meta, tags: ['x'] } })
    check([{ op: 'remove', path: '/meta' }], { tasks: b.tasks })
    check([{ op: 'remove', path: '/tasks/1/title' }], { ...b, tasks: [b.tasks[0], { id: 2 }] })
  })

  it('replace: scalar, element, container with another kind', () => {
    const b = base() as any
    check([{ op: 'replace', path: '/tasks/1/title', value: 'ship' }], { ...b, tasks: [b.tasks[0], { id: 2, title: 'ship' }] })
    check([{ op: 'replace', path: '/tasks/0', value: 'just a string' }], { ...b, tasks: ['just a string', b.tasks[1]] })
    check([{ op: 'replace', path: '/meta/tags', value: { not: 'an array' } }], { ...b, meta: { ...b.meta, tags: { not: 'an array' } } })
    check([{ op: 'replace', path: '/meta', value: { owner: 'cy' } }], { ...b, meta: { owner: 'cy' } })
  })

  it('move: within an array, across containers, to "/-"', () => {
    const b = base() as any
    check([{ op: 'move', from: '/tasks/1', path: '/tasks/0' }], { ...b, tasks: [b.tasks[1], b.tasks[0]] })
    check([{ op: 'move', from: '/tasks/0', path: '/tasks/-' }], { ...b, tasks: [b.tasks[1], b.tasks[0]] })
    check([{ op: 'move', from: '/meta/owner', path: '/owner' }], { ...b, owner: 'ann', meta: { tags: ['x', 'y'] } })
    check([{ op: 'move', from: '/meta/tags', path: '/tasks/0/tags' }],
      { tasks: [{ id: 1, title: 'plan', tags: ['x', 'y'] }, b.tasks[1]], meta: { owner: 'ann' } })
    check([{ op: 'move', from: '/meta', path: '/meta' }], b)
  })

  it('copy: element to "/-", subtree to a new key', () => {
    const b = base() as any
    check([{ op: 'copy', from: '/tasks/0', path: '/tasks/-' }], { ...b, tasks: [...b.tasks, b.tasks[0]] })
    check([{ op: 'copy', from: '/meta', path: '/meta2' }], { ...b, meta2: b.meta })
  })

  it('a copy is independent of its source', () => {
    const ops: Operation[] = [
      { op: 'copy', from: '/meta', path: '/meta2' },
      { op: 'add', path: '/meta2/tags/-', value: 'z' }
    ]
    const b = base() as any
    check(ops, { ...b, meta2: { owner: 'ann', tags: ['x', 'y', 'z'] } })
  })

  it('test ops pass through; several ops apply in order', () => {
    const b = base() as any
    check([
      { op: 'test', path: '/meta/owner', value: 'ann' },
      { op: 'add', path: '/tasks/-', value: { id: 3 } },
      { op: 'replace', path: '/tasks/2/id', value: 4 },
      { op: 'remove', path: '/tasks/0' },
      { op: 'test', path: '/tasks/1', value: { id: 4 } }
    ], { ...b, tasks: [b.tasks[1], { id: 4 }] })
  })

  it('root ops: replace and add "" set the whole state', () => {
    check([{ op: 'replace', path: '', value: { only: [1] } }], { only: [1] })
    check([{ op: 'add', path: '', value: { fresh: { a: 1 } } }], { fresh: { a: 1 } })
    check([{ op: 'replace', path: '', value: {} }], {})
  })

  it('invalid patches throw InvalidPatchError and leave the doc unchanged', () => {
    const invalid: Array<[string, unknown]> = [
      ['bad path', [{ op: 'remove', path: '/nope/deeper' }]],
      ['missing key', [{ op: 'remove', path: '/missing' }]],
      ['array index out of range', [{ op: 'add', path: '/tasks/7', value: 1 }]],
      ['non-numeric array index', [{ op: 'replace', path: '/tasks/first', value: 1 }]],
      ['failing test after a valid op', [
        { op: 'add', path: '/written', value: true },
        { op: 'test', path: '/meta/owner', value: 'not ann' }
      ]],
      ['non-array', { op: 'add', path: '/x', value: 1 }],
      ['null', null],
      ['unknown op', [{ op: 'frobnicate', path: '/x' }]],
      ['missing value', [{ op: 'add', path: '/x' }]],
      ['path without leading slash', [{ op: 'add', path: 'x', value: 1 }]],
      ['root replaced by an array', [{ op: 'replace', path: '', value: [1, 2] }]],
      ['root replaced by a scalar', [{ op: 'add', path: '', value: 3 }]]
    ]
    for (const [name, ops] of invalid) {
      const doc = docWith(base())
      const before = readState(doc)
      const snapshot = structuredClone(before)
      let updates = 0
      doc.on('update', () => { updates++ })
      // The SDK's order: validate on JSON first, replay on Yjs only when that succeeded.
      const err = catchError(() => {
        applyPatchToJson(before, ops)
        doc.transact(() => { applyPatchToYjs(stateRoot(doc), ops as Operation[]) })
      })
      expect(err, name).toBeInstanceOf(InvalidPatchError)
      expect((err as InvalidPatchError).code, name).toBe('INVALID_PATCH')
      expect(readState(doc), name).toEqual(snapshot)
      expect(before, `${name}: the input JSON is not mutated`).toEqual(snapshot)
      expect(updates, name).toBe(0)
    }
  })

  // BUG (src/patch.ts applyPatchToJson): fast-json-patch is called with mutateDocument=true and
  // inserts op.value objects by reference, so a later op that edits inside an added value mutates
  // the caller's op; applyPatchToYjs then replays the mutated op and applies the later edit twice.
  it('ops that edit inside a value added earlier in the same patch give the same result on JSON and Yjs', () => {
    const cases: Array<{ ops: Operation[], expected: JsonObject }> = [
      {
        ops: [{ op: 'add', path: '/list', value: [1, 2] }, { op: 'remove', path: '/list/0' }],
        expected: { list: [2] }
      },
      {
        ops: [{ op: 'add', path: '/q', value: { items: ['a'] } }, { op: 'add', path: '/q/items/0', value: 'first' }],
        expected: { q: { items: ['first', 'a'] } }
      },
      {
        ops: [{ op: 'add', path: '/new', value: [] }, { op: 'add', path: '/new/-', value: 'first' }],
        expected: { new: ['first'] }
      }
    ]
    for (const { ops, expected } of cases) {
      const original = structuredClone(ops)
      // Exactly what WorkflowHandle.patch does: validate on JSON, then replay the same ops on Yjs.
      const json = applyPatchToJson({}, ops)
      expect(json).toEqual(expected)
      const doc = new Y.Doc()
      doc.transact(() => { applyPatchToYjs(stateRoot(doc), ops) })
      expect(readState(doc), `Yjs state after ${JSON.stringify(original)}`).toEqual(expected)
      expect(ops, 'applyPatchToJson must not mutate the caller\'s ops').toEqual(original)
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('eventsToOps', () => {
  /** Observes a doc's state root; after every transaction the ops must turn the old JSON into the new. */
  interface Stats { transactions: number, remote: number, nested: number }
  const watch = (doc: Y.Doc, label: string): { check: (context: string) => void, stats: Stats } => {
    let mirror: JsonValue = readState(doc)
    let failure: string | null = null
    const stats: Stats = { transactions: 0, remote: 0, nested: 0 }
    stateRoot(doc).observeDeep((events, tr) => {
      stats.transactions++
      if (!tr.local) stats.remote++
      // Events on more than one level: ops for parents and for edits inside surviving children.
      if (new Set(events.map(e => e.path.length)).size > 1) stats.nested++
      const ops = eventsToOps(events)
      const after = readState(doc)
      try {
        const next = jsonpatch.applyPatch(jsonpatch.deepClone(mirror), jsonpatch.deepClone(ops), true).newDocument
        if (!deepEqual(next, after) && failure === null) {
          failure = `${label}: ops do not reproduce the new state\nbefore: ${JSON.stringify(mirror)}\n` +
            `ops: ${JSON.stringify(ops)}\ngot: ${JSON.stringify(next)}\nwant: ${JSON.stringify(after)}`
        }
      } catch (err) {
        if (failure === null) {
          failure = `${label}: ops do not apply: ${(err as Error).message.split('\n')[0]}\n` +
            `before: ${JSON.stringify(mirror)}\nops: ${JSON.stringify(ops)}\nwant: ${JSON.stringify(after)}`
        }
      }
      mirror = after
    })
    return {
      stats,
      check: context => {
        expect(failure, `${context}\n${failure}`).toBeNull()
        expect(mirror, `${label}: ${context}: a transaction without events changed the state`).toEqual(readState(doc))
      }
    }
  }

  it('reports simple local changes as the expected ops', () => {
    const doc = docWith({ tasks: [{ id: 1 }], n: 1 })
    const seen: Operation[][] = []
    stateRoot(doc).observeDeep(events => { seen.push(eventsToOps(events)) })
    edit(doc, d => { d.tasks.push({ id: 2 }); d.n = 2; d.fresh = [true] })
    edit(doc, d => { delete d.n })
    edit(doc, d => { d.tasks[0].done = true })
    expect(seen).toEqual([
      expect.arrayContaining([
        { op: 'add', path: '/tasks/1', value: { id: 2 } },
        { op: 'replace', path: '/n', value: 2 },
        { op: 'add', path: '/fresh', value: [true] }
      ]),
      [{ op: 'remove', path: '/n' }],
      [{ op: 'add', path: '/tasks/0/done', value: true }]
    ])
    expect(seen[0]).toHaveLength(3)
  })

  const KEYS = ['a', 'b', 'c', 'd', 'e', 'f']

  const randomValue = (rnd: () => number, depth: number): JsonValue => {
    const r = rnd()
    if (depth <= 0 || r < 0.5) {
      const s = rnd()
      if (s < 0.4) return Math.floor(rnd() * 100)
      if (s < 0.7) return KEYS[Math.floor(rnd() * KEYS.length)] + String(Math.floor(rnd() * 10))
      if (s < 0.85) return rnd() < 0.5
      return null
    }
    if (r < 0.75) {
      const out: JsonObject = {}
      const n = Math.floor(rnd() * 4)
      for (let i = 0; i < n; i++) out[KEYS[Math.floor(rnd() * KEYS.length)] as string] = randomValue(rnd, depth - 1)
      return out
    }
    return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(rnd, depth - 1))
  }

  const containersOf = (root: Y.Map<unknown>): Array<Y.Map<unknown> | Y.Array<unknown>> => {
    const out: Array<Y.Map<unknown> | Y.Array<unknown>> = []
    const walk = (node: unknown): void => {
      if (node instanceof Y.Map) {
        out.push(node)
        for (const key of Array.from(node.keys()).sort()) walk(node.get(key))
      } else if (node instanceof Y.Array) {
        out.push(node)
        node.forEach(walk)
      }
    }
    walk(root)
    return out
  }

  /** One random structural edit directly on Yjs types. */
  const randomYjsEdit = (doc: Y.Doc, rnd: () => number): void => {
    const containers = containersOf(stateRoot(doc))
    const target = containers[Math.floor(rnd() * containers.length)] as Y.Map<unknown> | Y.Array<unknown>
    if (target instanceof Y.Map) {
      const key = KEYS[Math.floor(rnd() * KEYS.length)] as string
      if (rnd() < 0.25 && target.has(key)) target.delete(key)
      else target.set(key, toYValue(randomValue(rnd, 3)))
      return
    }
    const r = rnd()
    if (target.length === 0 || r < 0.45) {
      const index = Math.floor(rnd() * (target.length + 1))
      const n = 1 + Math.floor(rnd() * 3)
      target.insert(index, Array.from({ length: n }, () => toYValue(randomValue(rnd, 3))))
    } else if (r < 0.75) {
      const index = Math.floor(rnd() * target.length)
      target.delete(index, Math.min(target.length - index, 1 + Math.floor(rnd() * 2)))
    } else {
      const index = Math.floor(rnd() * target.length)
      target.delete(index, 1)
      target.insert(index, [toYValue(randomValue(rnd, 3))])
    }
  }

  /** One random edit of plain JSON (for writes through setMapContents, as the SDK does). */
  const randomJsonEdit = (state: JsonObject, rnd: () => number): void => {
    const containers: Array<JsonObject | JsonValue[]> = []
    const walk = (node: JsonValue): void => {
      if (Array.isArray(node)) {
        containers.push(node)
        node.forEach(walk)
      } else if (node !== null && typeof node === 'object') {
        containers.push(node)
        for (const key of Object.keys(node).sort()) walk(node[key] as JsonValue)
      }
    }
    walk(state)
    const target = containers[Math.floor(rnd() * containers.length)] as JsonObject | JsonValue[]
    if (!Array.isArray(target)) {
      const key = KEYS[Math.floor(rnd() * KEYS.length)] as string
      if (rnd() < 0.25) delete target[key]
      else target[key] = randomValue(rnd, 3)
      return
    }
    const r = rnd()
    if (target.length === 0 || r < 0.45) {
      target.splice(Math.floor(rnd() * (target.length + 1)), 0, randomValue(rnd, 3))
    } else if (r < 0.75) {
      target.splice(Math.floor(rnd() * target.length), 1)
    } else {
      target[Math.floor(rnd() * target.length)] = randomValue(rnd, 3)
    }
  }

  const localTransaction = (doc: Y.Doc, rnd: () => number): void => {
    const edits = 1 + Math.floor(rnd() * 4)
    doc.transact(() => { for (let i = 0; i < edits; i++) randomYjsEdit(doc, rnd) })
  }

  const fuzz = (seed: number, steps: number): Stats => {
    const rnd = mulberry32(seed)
    const a = new Y.Doc()
    a.clientID = 1 + seed % 1000
    const b = new Y.Doc()
    b.clientID = 5000 + seed % 1000
    const wa = watch(a, 'doc A')
    const wb = watch(b, 'doc B')
    for (let step = 0; step < steps; step++) {
      const mode = rnd()
      let what: string
      if (mode < 0.3) {
        what = 'local Yjs edits on A'
        localTransaction(a, rnd)
        sync(a, b)
      } else if (mode < 0.5) {
        what = 'edits on B, received by A as a remote update'
        localTransaction(b, rnd)
        sync(b, a)
      } else if (mode < 0.75) {
        what = 'concurrent edits on A and B, then exchanged'
        localTransaction(a, rnd)
        localTransaction(b, rnd)
        if (rnd() < 0.5) { sync(a, b); sync(b, a) } else { sync(b, a); sync(a, b) }
      } else {
        what = 'setMapContents on A with a randomly edited JSON copy'
        const next = structuredClone(readState(a))
        const edits = 1 + Math.floor(rnd() * 3)
        for (let i = 0; i < edits; i++) randomJsonEdit(next, rnd)
        write(a, next)
        expect(readState(a), `seed=${seed} step=${step}: setMapContents wrote the wrong state`).toEqual(next)
        sync(a, b)
      }
      const context = `seed=${seed} step=${step} (${what})`
      wa.check(context)
      wb.check(context)
      expect(readState(b), `${context}: docs diverged`).toEqual(readState(a))
    }
    return {
      transactions: wa.stats.transactions + wb.stats.transactions,
      remote: wa.stats.remote + wb.stats.remote,
      nested: wa.stats.nested + wb.stats.nested
    }
  }

  const SEEDS = process.env.ACCORD_FUZZ_SEED !== undefined
    ? [Number(process.env.ACCORD_FUZZ_SEED)]
    : [1, 42, 20240611, 0xc0ffee]

  for (const seed of SEEDS) {
    it(`random transactions round-trip through fast-json-patch (seed ${seed})`, () => {
      const stats = fuzz(seed, 150)
      // Two observed docs, 150 steps each: comfortably more than 300 checked transactions, many
      // of them remote, many with events at several depths.
      expect(stats.transactions, `seed=${seed} ${JSON.stringify(stats)}`).toBeGreaterThanOrEqual(300)
      expect(stats.remote, `seed=${seed} ${JSON.stringify(stats)}`).toBeGreaterThanOrEqual(100)
      expect(stats.nested, `seed=${seed} ${JSON.stringify(stats)}`).toBeGreaterThanOrEqual(100)
    })
  }
})
