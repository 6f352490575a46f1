/**
 * The frozen JSON snapshot behind `handle.state`, kept up to date with structural sharing: each
 * transaction's Yjs events name the containers that changed, and only the path from the root to
 * each of them is rebuilt; every other object and array keeps its identity between versions.
 * A change under `/tasks/3` therefore yields a new root and a new `/tasks`, but the same
 * `/config` and `/tasks/0..2` objects, so `===` means "unchanged" (React selectors, memo).
 *
 *   const snap = createSnapshot(stateRoot(doc))
 *   root.observeDeep(events => { snap.apply(events) })   // inside the observer: deltas are live
 *   snap.read()                                           // frozen JSON, built in full at most once
 */
import * as Y from 'yjs'
import { deepFreeze, isPlainObject, type JsonObject, type JsonValue } from '../model/json.ts'
import { yToJson } from '../model/json-yjs.ts'

export interface Snapshot {
  /** The current state; built in full on the first read, incrementally after that. */
  read: () => JsonObject
  /** Forgets the snapshot: the next read builds it in full from the document. */
  invalidate: () => void
  /** Folds one transaction's deep events into the snapshot; call from the observeDeep callback. */
  apply: (events: Array<Y.YEvent<any>>) => void
}

/** The changed part of the tree: a node per container on a path to an event's target. */
interface Node {
  children: Map<string | number, Node>
  event: Y.YEvent<any> | null
}

const node = (): Node => ({ children: new Map(), event: null })

const fresh = (y: unknown): JsonValue => deepFreeze(yToJson(y))

const rebuildMap = (prev: JsonObject, y: Y.Map<unknown>, at: Node): JsonObject => {
  const changed = at.event?.changes.keys
  let sameKeys = true
  if (changed !== undefined) {
    for (const change of changed.values()) if (change.action !== 'update') sameKeys = false
  }
  // yToJson sorts keys; when no key was added or removed the previous order is still sorted.
  const keys = sameKeys ? Object.keys(prev) : Array.from(y.keys()).sort()
  const out: JsonObject = {}
  let same = sameKeys
  for (const key of keys) {
    const child = at.children.get(key)
    let value: JsonValue
    if (changed?.has(key) === true || !Object.prototype.hasOwnProperty.call(prev, key)) value = fresh(y.get(key))
    else if (child !== undefined) value = rebuild(prev[key] as JsonValue, y.get(key), child)
    else value = prev[key] as JsonValue
    if (value !== prev[key]) same = false
    out[key] = value
  }
  return same ? prev : Object.freeze(out)
}

const rebuildArray = (prev: JsonValue[], y: Y.Array<unknown>, at: Node): JsonValue[] => {
  let out: JsonValue[]
  if (at.event === null) out = prev.slice()
  else {
    // The delta walks the old array: retained elements are reused, inserted ones built fresh.
    out = []
    let old = 0
    for (const d of at.event.changes.delta) {
      if (d.retain !== undefined) {
        for (let i = 0; i < d.retain; i++) out.push(prev[old++] as JsonValue)
      } else if (d.delete !== undefined) old += d.delete
      else if (Array.isArray(d.insert)) for (const item of d.insert) out.push(fresh(item))
    }
    while (old < prev.length) out.push(prev[old++] as JsonValue)
  }
  // Children are keyed by index in the new array (Yjs reports event paths in final coordinates).
  for (const [index, child] of at.children) {
    if (typeof index === 'number' && index < out.length) out[index] = rebuild(out[index] as JsonValue, y.get(index), child)
  }
  if (out.length !== y.length) return fresh(y) as JsonValue[]
  Object.freeze(out)
  return out
}

const rebuild = (prev: JsonValue, y: unknown, at: Node): JsonValue => {
  if (y instanceof Y.Map && isPlainObject(prev)) return rebuildMap(prev, y, at)
  if (y instanceof Y.Array && Array.isArray(prev)) return rebuildArray(prev, y, at)
  // A kind change, Y.Text or XML from stock clients: no finer structure to share.
  return fresh(y)
}

export const createSnapshot = (root: Y.Map<unknown>): Snapshot => {
  let cached: JsonObject | null = null
  return {
    read: () => {
      cached ??= fresh(root) as JsonObject
      return cached
    },
    invalidate: () => { cached = null },
    apply: events => {
      // Nothing read yet: the first read builds it in full anyway.
      if (cached === null || events.length === 0) return
      const tree = node()
      for (const event of events) {
        let at = tree
        for (const segment of event.path) {
          let next = at.children.get(segment)
          if (next === undefined) {
            next = node()
            at.children.set(segment, next)
          }
          at = next
        }
        at.event = event
      }
      try {
        cached = rebuild(cached, root, tree) as JsonObject
      } catch {
        // Never serve a wrong snapshot: on anything unexpected, the next read rebuilds in full.
        cached = null
      }
    }
  }
}
