/**
 * Convergence under chaos: SDK agents with local persistence make random nested edits (objects in
 * arrays in objects), array moves, deletes and RFC 6902 patches, while they drop offline and
 * come back, exit and restart from their local store, and the server restarts under them. In the
 * end every agent, the server's live state and its persisted state (after a restart) are the same
 * JSON, every agent's local store holds it too, and no edit was lost: each one also wrote its own
 * marker under /log (a subtree the random edits never touch), and every marker is there.
 *
 * Seeded: the seed is in every assertion message; ACCORD_CHAOS_SEED=<seed> replays the same
 * sequence of edits and events (timing still varies). ACCORD_CHAOS_ROUNDS overrides the length.
 */
import { describe, expect, it } from 'vitest'
import jsonpatch, { type Operation } from 'fast-json-patch'
import { useServers, headOf } from './helpers/use-servers.ts'
import { sdkAgent, type WorkflowHandle } from './helpers/clients.ts'
import { tempDir, type TestServer } from './helpers/server.ts'
import { waitFor } from './helpers/wait.ts'
import { api } from './helpers/http.ts'
import { createRandom, seedFrom, type Random } from './helpers/random.ts'
import * as Y from 'yjs'
import { stockClient } from './helpers/clients.ts'

const { start, restart } = useServers()

const AGENTS = 6
const ROUNDS = Number(process.env.ACCORD_CHAOS_ROUNDS ?? 150)
const RESTARTS = 3
const ID = 'wf-chaos'

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type Obj = { [key: string]: Json }
type Path = Array<string | number>

// Keys with '/' and '~' check the JSON pointer escaping of patches on the way.
const KEYS = ['a', 'b', 'c', 'items', 'tags', 'meta', 'title', 'n', 'a/b', 'x~y']

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const pointer = (path: Path): string => path.map(s => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('')
const at = (root: Json, path: Path): Json => path.reduce<Json>((node, key) => (node as any)[key], root)

/** Every object and array under `path` (inclusive), with its path. */
const containers = (value: Json, path: Path): Array<{ path: Path, value: Obj | Json[] }> => {
  if (Array.isArray(value)) return [{ path, value }, ...value.flatMap((v, i) => containers(v, [...path, i]))]
  if (isObj(value)) return [{ path, value }, ...Object.entries(value).flatMap(([k, v]) => containers(v, [...path, k]))]
  return []
}

const canonical = (value: unknown): string => JSON.stringify(value, (_k, v: unknown) =>
  isObj(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v)

const randomValue = (r: Random, marker: string, depth = 0): Json => {
  switch (depth > 2 ? r.int(4) : r.int(7)) {
    case 0: return r.int(1000)
    case 1: return `${marker}:${r.int(100)}`
    case 2: return r.chance(0.5)
    case 3: return null
    case 4: return Array.from({ length: r.int(3) }, () => randomValue(r, marker, depth + 1))
    // Objects in arrays in objects.
    case 5: return { id: marker, fields: { [r.pick(KEYS)]: randomValue(r, marker, depth + 1) }, tags: [r.pick(KEYS), r.int(10)] }
    default: {
      const out: Obj = {}
      for (let i = r.int(3); i >= 0; i--) out[r.pick(KEYS)] = randomValue(r, marker, depth + 1)
      return out
    }
  }
}

interface Slot {
  name: string
  dir: string
  handle: WorkflowHandle | null
  /** The provider was disconnected on purpose (offline period); the handle still edits. */
  offline: boolean
}

describe('convergence under chaos', () => {
  it(`${AGENTS} agents, ${ROUNDS} rounds of random edits, disconnects, offline periods, exits and ${RESTARTS} server restarts converge to identical JSON`, async () => {
    const seed = seedFrom('ACCORD_CHAOS_SEED', 'chaos')
    const tag = `(seed ${seed}, ACCORD_CHAOS_SEED=${seed})`
    const r = createRandom(seed)
    const jitter = createRandom(seed ^ 0x5bd1e995)
    const started = Date.now()
    let srv: TestServer = await start()
    let serverUp = true
    let downRounds = 0
    let restarts = 0
    // When the server goes down: distinct rounds, and whether right after that round's edits
    // (while they are in flight) or before them.
    const downAt = new Map<number, 'before' | 'in flight'>()
    while (downAt.size < RESTARTS) {
      const round = r.range(2, ROUNDS - 4)
      if (Array.from(downAt.keys()).every(other => Math.abs(other - round) > 4)) downAt.set(round, r.chance(0.5) ? 'before' : 'in flight')
    }
    const stopServer = async (): Promise<void> => {
      await srv.stop()
      serverUp = false
      downRounds = r.int(3)
      bump('server down')
    }
    const http = (): string => srv.url.replace(/^ws/, 'http')
    const markers: string[] = []
    const counts: Record<string, number> = {}
    const bump = (what: string): void => { counts[what] = (counts[what] ?? 0) + 1 }
    let opNumber = 0

    try {
      const open = async (slot: Slot, waitSynced: boolean): Promise<WorkflowHandle> => {
        const handle = sdkAgent(srv.url, ID, slot.name, {
          persistence: slot.dir,
          recovery: { baseMs: 20, capMs: 200, random: jitter.next }
        }) as unknown as WorkflowHandle
        slot.handle = handle
        slot.offline = false
        // Edits only on top of what the agent had: with nothing loaded, a write would race the stored state.
        await handle.whenLoaded()
        if (waitSynced) await handle.whenSynced({ timeoutMs: 15_000 })
        return handle
      }

      // Seed the shape, then bring everyone in.
      const slots: Slot[] = []
      for (let i = 0; i < AGENTS; i++) slots.push({ name: `agent-${i}`, dir: await tempDir(), handle: null, offline: false })
      const first = await open(slots[0] as Slot, true)
      first.update(d => {
        d.log = {}
        d.data = { groups: [{ title: 'g0', items: [{ id: 'seed', fields: { a: 1 }, tags: ['x'] }] }], meta: { owner: 'seed' } }
      })
      await Promise.all(slots.slice(1).map(s => open(s, true)))
      await waitFor(() => slots.every(s => canonical(s.handle?.state) === canonical(first.state)), { what: `everyone has the seed ${tag}` })

      /** One random edit by `slot`, tagged with a marker under /log; false when it was refused (an invalid patch writes nothing). */
      const edit = (slot: Slot): boolean => {
        const handle = slot.handle as WorkflowHandle
        const marker = `${slot.name}-${++opNumber}`
        const state = handle.state as unknown as Obj
        const data = state.data
        if (!isObj(data)) throw new Error(`/data is gone ${tag}: ${JSON.stringify(state)}`)
        const all = containers(data, ['data'])
        const arrays = all.filter(c => Array.isArray(c.value)) as Array<{ path: Path, value: Json[] }>
        const withChildren = all.filter(c => (Array.isArray(c.value) ? c.value.length : Object.keys(c.value).length) > 0 && c.path.length > 1)
        const big = JSON.stringify(data).length > 15_000
        const kind = r.weighted<string>([
          [big ? 1 : 4, 'set'], [big ? 0 : 3, 'insert'], [arrays.some(a => a.value.length >= 2) ? 3 : 0, 'move'],
          [withChildren.length > 0 ? (big ? 8 : 2) : 0, 'delete'], [5, 'patch']
        ])
        bump(kind)
        if (kind === 'patch') {
          const { ops, valid } = randomPatch(r, data, all, marker)
          const before = handle.state
          let expected: unknown
          try {
            if (!valid) throw new Error('out of bounds')
            expected = jsonpatch.applyPatch(jsonpatch.deepClone(before), jsonpatch.deepClone(ops) as Operation[], true, false).newDocument
          } catch {
            // Not a valid patch for this state: refused as a whole, nothing written (not even half of a move).
            expect(() => handle.patch([...ops, { op: 'add', path: `/log/${marker}`, value: opNumber }]), `invalid patch ${JSON.stringify(ops)} ${tag}`).toThrow(/invalid patch/i)
            expect(canonical(handle.state), `state after the invalid patch ${JSON.stringify(ops)} ${tag}`).toBe(canonical(before))
            bump('invalid patch refused')
            return false
          }
          let after: unknown
          try {
            after = handle.patch([...ops, { op: 'add', path: `/log/${marker}`, value: opNumber }], { description: `chaos ${marker}` })
          } catch (err) {
            throw new Error(`patch ${JSON.stringify(ops)} failed on ${JSON.stringify(before)}: ${(err as Error).message}`, { cause: err })
          }
          ;(expected as Obj).log = { ...(expected as { log: Obj }).log, [marker]: opNumber }
          expect(canonical(after), `patch ${JSON.stringify(ops)} applied locally as RFC 6902 says ${tag}`).toBe(canonical(expected))
          markers.push(marker)
          return true
        }
        handle.update(d => {
          const draft = d as unknown as Obj
          ;(draft.log as Obj)[marker] = opNumber
          switch (kind) {
            case 'set': {
              const target = r.pick(all)
              const node = at(draft, target.path)
              if (Array.isArray(node)) {
                if (node.length > 0 && r.chance(0.5)) node[r.int(node.length)] = randomValue(r, marker)
                else node.push(randomValue(r, marker))
              } else (node as Obj)[r.pick(KEYS)] = randomValue(r, marker)
              break
            }
            case 'insert': {
              // An object into an array (making one if there is none).
              const target = arrays.length > 0 ? r.pick(arrays) : null
              const item = { id: marker, fields: { [r.pick(KEYS)]: randomValue(r, marker, 1) }, tags: [marker] }
              if (target === null) (draft.data as Obj).groups = [{ title: marker, items: [item] }]
              else {
                const list = at(draft, target.path) as Json[]
                list.splice(r.int(list.length + 1), 0, item)
              }
              break
            }
            case 'move': {
              const target = r.pick(arrays.filter(a => a.value.length >= 2))
              const list = at(draft, target.path) as Json[]
              const [moved] = list.splice(r.int(list.length), 1)
              list.splice(r.int(list.length + 1), 0, moved as Json)
              break
            }
            default: {
              const target = r.pick(withChildren)
              const node = at(draft, target.path)
              if (Array.isArray(node)) node.splice(r.int(node.length), 1)
              else delete (node as Obj)[r.pick(Object.keys(node as Obj))]
            }
          }
        }, { description: `chaos ${marker}` })
        markers.push(marker)
        return true
      }

      for (let round = 0; round < ROUNDS; round++) {
        // The server: down for up to three rounds, a few times.
        if (serverUp && downAt.get(round) === 'before') await stopServer()
        else if (!serverUp && downRounds-- <= 0) {
          srv = await restart(srv)
          serverUp = true
          restarts++
        }
        // Agents: offline periods, exits and restarts from their local store.
        for (const slot of slots) {
          if (slot.handle === null) {
            if (r.chance(0.35)) {
              await open(slot, false)
              bump('agent restarted')
            }
          } else if (slot.offline) {
            if (r.chance(0.3)) {
              slot.handle.provider.connect()
              slot.offline = false
            }
          } else if (r.chance(0.08)) {
            slot.handle.provider.disconnect()
            slot.offline = true
            bump('agent offline')
          } else if (r.chance(0.06)) {
            const handle = slot.handle
            slot.handle = null
            await handle.whenPersisted()
            await handle.close()
            bump('agent exited')
          }
        }
        // Edits, by everyone who runs: online, offline, with the server down.
        const headBefore = serverUp ? await headOf(srv, ID) : 0
        let onlineEdits = 0
        const markersBefore = markers.length
        for (const slot of slots) {
          if (slot.handle === null) continue
          const n = r.int(3)
          let wrote = false
          for (let k = 0; k < n; k++) wrote = edit(slot) || wrote
          if (!slot.offline && wrote) onlineEdits++
        }
        const roundMarkers = markers.slice(markersBefore)
        if (serverUp && downAt.get(round) === 'in flight') await stopServer()
        // Let some of it through before the next round (edits from this round stay concurrent).
        if (serverUp && onlineEdits > 0) {
          try {
            await waitFor(async () => (await headOf(srv, ID)) > headBefore, { timeoutMs: 20_000, what: `progress in round ${round} ${tag}` })
          } catch (err) {
            console.log('chaos diagnostics', JSON.stringify({
              head: await headOf(srv, ID),
              headBefore,
              connections: srv.server.connectionCount(),
              loaded: srv.server.loadedWorkflows(),
              server: await serverView(srv.url),
              stored: (await srv.server.store.versionsAfter(ID, Math.max(0, headBefore - 3), 20)).map(v => `${v.version} by ${v.author}: ${v.description}`),
              live: await api(http(), 'GET', `/v1/workflows/${ID}`).then(res => ({ version: res.body?.version, roundMarkers: roundMarkers.map(m => [m, Object.hasOwn(res.body?.state?.log ?? {}, m)]) })),
              slots: slots.map(sl => ({
                name: sl.name,
                offline: sl.offline,
                running: sl.handle !== null,
                synced: sl.handle?.synced,
                wsconnected: sl.handle?.provider.wsconnected,
                pending: sl.handle === null ? null : pendingOf(sl.handle.doc),
                stateVector: sl.handle === null ? null : Object.fromEntries(Y.decodeStateVector(Y.encodeStateVector(sl.handle.doc)))
              })),
              logs: srv.logs.filter(l => l.level !== 'info' && l.level !== 'debug').slice(-10)
            }))
            throw err
          }
        }
      }

      // Everyone back: the server up, every agent running and connected.
      if (!serverUp) {
        srv = await restart(srv)
        serverUp = true
      }
      for (const slot of slots) {
        if (slot.handle === null) await open(slot, false)
        else if (slot.offline) {
          slot.handle.provider.connect()
          slot.offline = false
        }
      }
      const handles = slots.map(s => s.handle as WorkflowHandle)
      let last: string[] = []
      await waitFor(async () => {
        const server = await api(http(), 'GET', `/v1/workflows/${ID}`)
        last = [...handles.map(h => canonical(h.state)), canonical(server.body?.state)]
        return handles.every(h => h.synced) && last.every(s => s === last[0])
      }, { timeoutMs: 30_000, what: `convergence ${tag}` }).catch((err: Error) => {
        throw new Error(`${err.message}\n${last.map((s, i) => `${i < AGENTS ? `agent-${i}` : 'server'}: ${s.slice(0, 2000)}`).join('\n')}`)
      })
      const final = JSON.parse(last[0] as string) as Obj

      expect(restarts, tag).toBe(RESTARTS)

      // No edit lost: every marker made it.
      const missing = markers.filter(m => !Object.hasOwn(final.log as Obj, m))
      expect(missing, `markers of edits missing from the converged state ${tag}`).toEqual([])
      expect(Object.keys(final.log as Obj).length, tag).toBe(markers.length)

      // Persisted: after every agent stored its replica and exited, and the server restarted.
      for (const slot of slots) {
        const handle = slot.handle as WorkflowHandle
        slot.handle = null
        await handle.whenPersisted()
        await handle.close()
      }
      await srv.stop()
      srv = await restart(srv)
      const stored = await api(http(), 'GET', `/v1/workflows/${ID}`)
      expect(stored.status, tag).toBe(200)
      expect(canonical(stored.body.state), `the server's persisted state ${tag}`).toBe(canonical(final))
      for (const slot of slots) {
        // What each agent's local store holds, before it connects.
        const handle = sdkAgent(srv.url, ID, slot.name, { persistence: slot.dir })
        await handle.whenLoaded()
        expect(canonical(handle.state), `${slot.name}'s local replica ${tag}`).toBe(canonical(final))
        await handle.close()
      }
      console.log(`chaos ${tag}: ${markers.length} edits (${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}), ` +
        `head ${stored.body.version}, ${((Date.now() - started) / 1000).toFixed(1)} s`)
    } catch (err) {
      // Every failure names the seed, also errors thrown by the SDK or a helper.
      const e = err as Error
      if (!e.message.includes(tag)) e.message = `${e.message} ${tag}`
      console.log(`chaos failed ${tag} after ${markers.length} edits; server errors:`,
        srv.logs.filter(l => l.level === 'error').slice(-10).map(l => JSON.stringify(l)).join('\n'))
      throw err
    }
  }, 180_000)
})

/** What a document holds that it cannot integrate yet (missing what it builds on). */
const pendingOf = (doc: Y.Doc): unknown => ({
  structs: doc.store.pendingStructs === null ? null : Object.fromEntries(doc.store.pendingStructs.missing),
  deletes: doc.store.pendingDs !== null
})

/** The server's document as a fresh stock client receives it (pending structs included), for stall diagnostics. */
const serverView = async (url: string): Promise<unknown> => {
  const client = stockClient(url, ID)
  try {
    await Promise.race([client.synced(), new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('no sync reply in 5 s')) }, 5000))])
    return { stateVector: Object.fromEntries(Y.decodeStateVector(Y.encodeStateVector(client.doc))), pending: pendingOf(client.doc) }
  } catch (err) {
    return { error: (err as Error).message }
  } finally {
    client.close()
  }
}

/**
 * A random RFC 6902 patch for `data` (under /data), without the marker op. Now and then an invalid
 * one (`valid: false`): a move to the index just past the end of its own array (one shorter once
 * the element is taken out), which fast-json-patch alone would take as an append.
 */
const randomPatch = (r: Random, data: Obj, all: Array<{ path: Path, value: Obj | Json[] }>, marker: string): { ops: Operation[], valid: boolean } => {
  const root = { data } as Obj
  const children = all.flatMap(c => Array.isArray(c.value)
    ? c.value.map((_, i) => [...c.path, i])
    : Object.keys(c.value).map(k => [...c.path, k]))
  const ok = (...ops: Operation[]): { ops: Operation[], valid: boolean } => ({ ops, valid: true })
  /** A place to add at: a key of an object (new or existing), or an index of an array (or '-'). */
  const addTarget = (from?: Path, move = false): string | null => {
    // Taking an element out of an array shifts the later ones: a container inside one of them is
    // somewhere else once the move adds (RFC 6902 resolves `path` after the removal).
    const shifted = (c: Path): boolean => {
      if (!move || from === undefined) return false
      const parent = from.slice(0, -1)
      const index = from[from.length - 1]
      return typeof index === 'number' && c.length > parent.length && pointer(c.slice(0, parent.length)) === pointer(parent) && (c[parent.length] as number) > index
    }
    const candidates = from === undefined ? all : all.filter(c => !pointer(c.path).startsWith(pointer(from) + '/') && pointer(c.path) !== pointer(from) && !shifted(c.path))
    if (candidates.length === 0) return null
    const c = r.pick(candidates)
    if (!Array.isArray(c.value)) return pointer([...c.path, r.pick(KEYS)])
    // Moving within one array: it is one shorter once the element is out.
    const length = move && from !== undefined && pointer(from.slice(0, -1)) === pointer(c.path) ? c.value.length - 1 : c.value.length
    return pointer(c.path) + '/' + (r.chance(0.3) ? '-' : String(r.int(length + 1)))
  }
  const small = (p: Path): boolean => JSON.stringify(at(root, p)).length < 400
  const arrays = all.filter(c => Array.isArray(c.value) && c.value.length > 0) as Array<{ path: Path, value: Json[] }>
  if (arrays.length > 0 && r.chance(0.03)) {
    const list = r.pick(arrays)
    return { ops: [{ op: 'move', from: pointer([...list.path, 0]), path: pointer([...list.path, list.value.length]) }], valid: false }
  }
  const kind = r.pick(['add', 'add', 'remove', 'replace', 'move', 'copy', 'test'])
  if (children.length === 0 || kind === 'add') return ok({ op: 'add', path: addTarget() as string, value: randomValue(r, marker) })
  const child = r.pick(children)
  switch (kind) {
    case 'remove': return ok({ op: 'remove', path: pointer(child) })
    case 'replace': return ok({ op: 'replace', path: pointer(child), value: randomValue(r, marker) })
    case 'move': {
      const to = addTarget(child, true)
      return to === null ? ok({ op: 'remove', path: pointer(child) }) : ok({ op: 'move', from: pointer(child), path: to })
    }
    case 'copy': {
      const to = addTarget(child)
      return to === null || !small(child) ? ok({ op: 'add', path: addTarget() as string, value: randomValue(r, marker) }) : ok({ op: 'copy', from: pointer(child), path: to })
    }
    default:
      return ok(
        { op: 'test', path: pointer(child), value: at(root, child) },
        { op: 'replace', path: pointer(child), value: randomValue(r, marker) }
      )
  }
}
