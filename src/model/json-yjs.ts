/**
 * Plain JSON <-> Yjs. Objects are Y.Map, arrays Y.Array, scalars plain values. Writes go through
 * `setMapContents`/`setArrayContents`, which turn "make this equal to that" into the smallest
 * set of Yjs operations, so concurrent edits of different keys or elements by other agents
 * survive the merge.
 */
import * as Y from 'yjs'
import { deepEqual, isPlainObject, type JsonObject, type JsonValue } from './json.ts'

/** The root map holding a workflow's JSON state. Other roots are reserved for Accord. */
export const STATE_ROOT = 'state'

export const stateRoot = (doc: Y.Doc): Y.Map<unknown> => doc.getMap(STATE_ROOT)

export const toYValue = (value: JsonValue): unknown => {
  if (Array.isArray(value)) return Y.Array.from(value.map(toYValue) as any[])
  if (isPlainObject(value)) {
    const entries: Array<[string, unknown]> = []
    for (const [k, v] of Object.entries(value)) if (v !== undefined) entries.push([k, toYValue(v)])
    return new Y.Map(entries)
  }
  return value
}

/**
 * JSON of a Yjs value with object keys in sorted order: Y.Map.toJSON() follows the order in
 * which this replica happened to receive the keys, so peers would print the same state differently.
 */
export const yToJson = (value: unknown): JsonValue => {
  if (value instanceof Y.Map) {
    const out: JsonObject = {}
    for (const key of Array.from(value.keys()).sort()) out[key] = yToJson(value.get(key))
    return out
  }
  if (value instanceof Y.Array) return value.toArray().map(yToJson)
  if (value instanceof Y.AbstractType) return value.toJSON() as JsonValue
  return value as JsonValue
}

export const readState = (doc: Y.Doc): JsonObject => yToJson(stateRoot(doc)) as JsonObject

export const setMapContents = (ymap: Y.Map<unknown>, next: Record<string, unknown>): void => {
  for (const key of Array.from(ymap.keys())) {
    if (next[key] === undefined || !Object.prototype.hasOwnProperty.call(next, key)) ymap.delete(key)
  }
  for (const [key, value] of Object.entries(next)) {
    if (value === undefined) continue
    setChild(ymap, key, value as JsonValue)
  }
}

/** Makes `parent[key]` equal to `value`, reusing nested containers when the kinds match. */
const setChild = (ymap: Y.Map<unknown>, key: string, value: JsonValue): void => {
  const cur = ymap.get(key)
  if (cur instanceof Y.Map && isPlainObject(value)) setMapContents(cur, value)
  else if (cur instanceof Y.Array && Array.isArray(value)) setArrayContents(cur, value)
  else if (cur instanceof Y.AbstractType || !ymap.has(key) || cur !== value) ymap.set(key, toYValue(value))
}

/**
 * Trims the common prefix and suffix, edits the overlapping middle element-wise (recursing
 * into containers of the same kind) and inserts or deletes the rest.
 */
export const setArrayContents = (yarr: Y.Array<unknown>, next: JsonValue[]): void => {
  const cur = yarr.toArray()
  const curJson = cur.map(yToJson)
  let start = 0
  while (start < cur.length && start < next.length && deepEqual(curJson[start], next[start])) start++
  let endCur = cur.length
  let endNext = next.length
  while (endCur > start && endNext > start && deepEqual(curJson[endCur - 1], next[endNext - 1])) {
    endCur--
    endNext--
  }
  const common = Math.min(endCur - start, endNext - start)
  for (let i = start; i < start + common; i++) {
    const c = cur[i]
    const v = next[i] as JsonValue
    if (c instanceof Y.Map && isPlainObject(v)) setMapContents(c, v)
    else if (c instanceof Y.Array && Array.isArray(v)) setArrayContents(c, v)
    else {
      yarr.delete(i, 1)
      yarr.insert(i, [toYValue(v)])
    }
  }
  if (endCur - start > common) yarr.delete(start + common, endCur - start - common)
  else if (endNext - start > common) {
    yarr.insert(start + common, next.slice(start + common, endNext).map(toYValue))
  }
}

/** Makes `container[key]` equal to `value` where container is a Y.Map or Y.Array. */
export const setAt = (container: Y.Map<unknown> | Y.Array<unknown>, key: string | number, value: JsonValue): void => {
  if (container instanceof Y.Map) {
    setChild(container, String(key), value)
    return
  }
  const index = Number(key)
  const cur = container.get(index)
  if (cur instanceof Y.Map && isPlainObject(value)) setMapContents(cur, value)
  else if (cur instanceof Y.Array && Array.isArray(value)) setArrayContents(cur, value)
  else {
    container.delete(index, 1)
    container.insert(index, [toYValue(value)])
  }
}
