/**
 * What the tree and the diff show, computed in the data worker from plain JSON or from the live
 * document's Y.Map / Y.Array, read only as far as asked (one container's first `limit`
 * children), so a 5 MB state costs what is on screen and the live view never converts the
 * whole document to JSON.
 *
 *   viewAt(stateRoot(doc), '/items', 200)   // { size: 20000, list: true, entries: [...200] }
 *   diffRows(before, after, ops)            // [{ op, path, before, after }]
 */
import * as Y from 'yjs'
import type { JsonPatchOp } from '../index.ts'
import type { DiffRow, Entry, NodeView } from './protocol.ts'

type Container = Record<string, unknown> | unknown[] | Y.Map<unknown> | Y.Array<unknown>

/** Plain JSON containers, and the live document's Y.Map / Y.Array. */
const isContainer = (v: unknown): v is Container =>
  v instanceof Y.Map || v instanceof Y.Array || (v !== null && typeof v === 'object' && !(v instanceof Y.AbstractType))

const sizeOf = (v: Container): number =>
  v instanceof Y.Map ? v.size : v instanceof Y.Array ? v.length : Array.isArray(v) ? v.length : Object.keys(v).length

const isList = (v: Container): boolean => v instanceof Y.Array || Array.isArray(v)

const unescape = (raw: string): string => raw.replace(/~1/g, '/').replace(/~0/g, '~')

/** The child `key` of a container (plain or Yjs), or undefined. */
const childOf = (node: unknown, key: string): unknown => {
  if (node instanceof Y.Map) return node.get(key)
  if (node instanceof Y.Array) {
    const i = Number(key)
    return Number.isInteger(i) && i >= 0 && i < node.length ? node.get(i) : undefined
  }
  if (node === null || typeof node !== 'object' || node instanceof Y.AbstractType) return undefined
  return (node as Record<string, unknown>)[key]
}

/** The value at a JSON pointer (plain JSON or Yjs), or undefined. */
export const valueAt = (value: unknown, path: string): unknown => {
  if (path === '') return value
  let node = value
  for (const raw of path.slice(1).split('/')) {
    node = childOf(node, unescape(raw))
    if (node === undefined) return undefined
  }
  return node
}

/** The first `limit` children as [key, value]; map keys sorted, as readState sorts them. */
const firstEntries = (v: Container, limit: number): Array<[string, unknown]> => {
  if (v instanceof Y.Map) return Array.from(v.keys()).sort().slice(0, limit).map(k => [k, v.get(k)])
  if (v instanceof Y.Array) return v.slice(0, limit).map((x, i) => [String(i), x])
  if (Array.isArray(v)) return v.slice(0, limit).map((x, i) => [String(i), x])
  return Object.keys(v).slice(0, limit).map(k => [k, v[k]])
}

const summary = (v: Container): string => {
  const n = sizeOf(v)
  return isList(v) ? `[…] ${n} item${n === 1 ? '' : 's'}` : `{…} ${n} key${n === 1 ? '' : 's'}`
}

/** A value as JSON text cut at 300 characters; a big container as its size only (no 5 MB stringify). */
export const scalarText = (v: unknown): string => {
  if (isContainer(v) && sizeOf(v) > 50) return summary(v)
  const plain = v instanceof Y.AbstractType ? (v.toJSON() as unknown) : v
  const text = JSON.stringify(plain) ?? 'undefined'
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}

const entryOf = (key: string, v: unknown): Entry => {
  if (isContainer(v)) return { key, type: 'container', text: '', size: sizeOf(v), list: isList(v) }
  const t = typeof v
  const type: Entry['type'] = v === null ? 'null' : t === 'string' || t === 'number' || t === 'boolean' ? t : 'other'
  const entry: Entry = { key, type, text: scalarText(v) }
  if (typeof v === 'string' && v.length > 300) entry.title = v.slice(0, 5000)
  return entry
}

/** The container at `path` with its first `limit` children, or null when there is none. */
export const viewAt = (root: unknown, path: string, limit: number): NodeView | null => {
  const node = valueAt(root, path)
  if (!isContainer(node)) return null
  return { size: sizeOf(node), list: isList(node), entries: firstEntries(node, limit).map(([k, v]) => entryOf(k, v)) }
}

/** Whether a change at `changed` can alter the view of the container at `watched`. */
export const affects = (changed: string, watched: string): boolean =>
  changed === watched || changed.startsWith(`${watched}/`) || watched.startsWith(`${changed}/`)

/** Diff rows: each op with the value it replaced (in `before`) and the value it left (in `after`). */
export const diffRows = (before: unknown, after: unknown, ops: JsonPatchOp[]): DiffRow[] => ops.map(op => {
  const was = valueAt(before, op.from ?? op.path)
  const is = valueAt(after, op.path)
  return {
    op: op.op,
    path: op.from === undefined ? op.path : `${op.from} → ${op.path}`,
    before: was === undefined ? null : scalarText(was),
    after: is === undefined ? null : scalarText(is)
  }
})
