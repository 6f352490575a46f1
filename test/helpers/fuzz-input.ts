/**
 * Inputs for fuzzing the sync protocol: y-websocket message framing, a corpus of real Yjs
 * updates, state vectors and awareness updates to mutate (bit flips, truncation, splices, huge
 * varints, cross-overs), and random or broken JSON. Deterministic for a given Random.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as awarenessProtocol from 'y-protocols/awareness'
import type { Random } from './random.ts'

export const message = (write: (enc: encoding.Encoder) => void): Uint8Array => {
  const enc = encoding.createEncoder()
  write(enc)
  return encoding.toUint8Array(enc)
}
export const varUint = (n: number): Uint8Array => message(enc => { encoding.writeVarUint(enc, n) })
export const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
export const sync = (syncType: number, payload: Uint8Array): Uint8Array => concat(varUint(0), varUint(syncType), varUint(payload.length), payload)
export const awareness = (payload: Uint8Array): Uint8Array => concat(varUint(1), varUint(payload.length), payload)
export const framed = (type: number, id: number | null, text: string): Uint8Array =>
  message(enc => {
    encoding.writeVarUint(enc, type)
    if (id !== null) encoding.writeVarUint(enc, id)
    encoding.writeVarString(enc, text)
  })

/** Sync step 1 with an empty state vector: the server answers with sync step 2 once it processed everything before it. */
export const PROBE = sync(0, Y.encodeStateVector(new Y.Doc()))

/** Real protocol payloads to mutate: Yjs updates (incremental, full, merged, V2), state vectors, awareness updates. */
export interface Corpus { updates: Uint8Array[], v2: Uint8Array[], stateVectors: Uint8Array[], awareness: Uint8Array[] }

export const buildCorpus = (r: Random): Corpus => {
  const updates: Uint8Array[] = []
  const docs = [new Y.Doc(), new Y.Doc(), new Y.Doc()]
  docs.forEach((d, i) => {
    d.clientID = 1000 + i * 1_000_003 + r.int(1_000_000)
    d.on('update', (u: Uint8Array) => { updates.push(u) })
  })
  const key = (): string => r.pick(['a', 'b', 'tasks', 'owner', 'deep', 'list', 'x'.repeat(r.range(1, 40))])
  const scalar = (): unknown => r.pick([r.int(1000), -r.next(), 'text'.repeat(r.range(0, 5)), true, null, 2 ** 53 - 1])
  for (let i = 0; i < 80; i++) {
    const d = r.pick(docs)
    const root = d.getMap('state')
    d.transact(() => {
      switch (r.int(9)) {
        case 0: root.set(key(), scalar()); break
        case 1: root.set(key(), new Y.Map([['k', scalar()], ['nested', new Y.Map([['v', scalar()]])]])); break
        case 2: {
          let list = root.get('list')
          if (!(list instanceof Y.Array)) {
            list = new Y.Array()
            root.set('list', list)
          }
          const arr = list as Y.Array<unknown>
          arr.insert(r.int(arr.length + 1), [new Y.Map([['title', 'item ' + i], ['done', r.chance(0.5)]]), scalar()])
          break
        }
        case 3: root.delete(key()); break
        case 4: {
          const list = root.get('list')
          if (list instanceof Y.Array && list.length > 0) list.delete(r.int(list.length), 1)
          break
        }
        case 5: {
          const text = d.getText('notes')
          text.insert(r.int(text.length + 1), 'hello '.repeat(r.range(1, 4)))
          break
        }
        case 6: d.getMap('accord:agents').set(String(d.clientID), 'agent-' + i); break
        case 7: d.getArray('accord:events').push([{ kind: 'x', at: i }]); break
        default: {
          const other = r.pick(docs)
          if (other !== d) Y.applyUpdate(other, Y.encodeStateAsUpdate(d, Y.encodeStateVector(other)))
        }
      }
    })
  }
  const full = docs.map(d => Y.encodeStateAsUpdate(d))
  const corpus: Corpus = {
    updates: [...updates, ...full, Y.mergeUpdates(updates)],
    v2: docs.map(d => Y.encodeStateAsUpdateV2(d)),
    stateVectors: docs.map(d => Y.encodeStateVector(d)),
    awareness: []
  }
  for (const d of docs) {
    const aw = new awarenessProtocol.Awareness(d)
    aw.setLocalState({ user: { name: 'fuzzer', color: '#ff0000' }, cursor: { anchor: r.int(100), head: r.int(100) } })
    corpus.awareness.push(awarenessProtocol.encodeAwarenessUpdate(aw, [d.clientID]))
    aw.destroy()
    d.destroy()
  }
  return corpus
}

/** Bit flips, truncation, splices, huge varints, cross-overs. */
export const mutate = (r: Random, input: Uint8Array, corpus: Uint8Array[]): Uint8Array => {
  let out: Uint8Array = Uint8Array.from(input)
  const rounds = r.range(1, 4)
  for (let k = 0; k < rounds; k++) {
    const at = r.int(out.length + 1)
    switch (r.int(9)) {
      case 0: {
        const flips = r.range(1, 8)
        for (let i = 0; i < flips && out.length > 0; i++) {
          const j = r.int(out.length)
          out[j] = (out[j] as number) ^ (1 << r.int(8))
        }
        break
      }
      case 1: out = out.slice(0, at); break
      case 2: out = concat(out.slice(0, at), r.bytes(r.range(1, 16)), out.slice(at)); break
      case 3: out = concat(out.slice(0, at), out.slice(Math.min(out.length, at + r.range(1, 16)))); break
      case 4: if (out.length > 0) out[r.int(out.length)] = r.pick([0, 0x7f, 0x80, 0xff, 1, 2, 8, 9, 10]); break
      case 5: out = concat(out.slice(0, at), r.pick([Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f), Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), varUint(2 ** 31), varUint(2 ** 53 - 1)]), out.slice(at)); break
      case 6: {
        const other = r.pick(corpus)
        out = concat(out.slice(0, at), other.slice(r.int(other.length + 1)))
        break
      }
      case 7: {
        const from = r.int(out.length + 1)
        out = concat(out.slice(0, at), out.slice(from, from + r.range(1, 32)), out.slice(at))
        break
      }
      default: out = out.slice(r.int(Math.max(1, out.length)))
    }
  }
  return out
}

export const randomJson = (r: Random, depth = 0): unknown => {
  const kind = depth > 3 ? r.int(5) : r.int(8)
  switch (kind) {
    case 0: return r.int(2 ** 31) * (r.chance(0.5) ? 1 : -1)
    case 1: return r.pick(['', 'x', 'ü', '/tasks/0', '__proto__', 'constructor', '\u0000', 'a'.repeat(r.range(1, 300))])
    case 2: return r.chance(0.5)
    case 3: return null
    case 4: return r.next() * 1e300
    case 5: return Array.from({ length: r.int(5) }, () => randomJson(r, depth + 1))
    default: {
      const out: Record<string, unknown> = {}
      for (let i = r.int(5); i > 0; i--) out[r.pick(['a', 'b', 'tasks', 'state', 'version', 'op', 'path', 'value', 'from', 'workflowId', 'name', 'kind', 'constructor', 'x'.repeat(r.range(1, 50))])] = randomJson(r, depth + 1)
      return out
    }
  }
}

/** A JSON text that is not valid JSON (or not the shape asked for). */
export const brokenJson = (r: Random): string => {
  const valid = JSON.stringify(randomJson(r)) ?? 'null'
  return r.pick([
    valid.slice(0, Math.max(0, valid.length - r.range(1, 5))),
    '{' + valid, valid + '}', "{'single': 'quotes'}", '{"a":1,}', 'NaN', 'undefined', '\uFEFF{}', '{"a": 01}',
    Buffer.from(r.bytes(r.range(1, 64))).toString('latin1'), '[' .repeat(r.range(1, 2000)), '{"a":'.repeat(r.range(1, 500)),
    '"' + 'x'.repeat(r.range(1, 100)), '{"__proto__": {"polluted": true}}', '1e999999', '-', '[1, 2, 3'
  ])
}
