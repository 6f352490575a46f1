/**
 * A collapsible JSON tree that renders lazily: a node's children exist in the DOM only while it
 * is open, and at most PAGE of them until "more" is asked for, so a 5 MB state costs what is
 * on screen. It takes plain JSON or the live Y.Doc's root (Y.Map / Y.Array), so the live view never
 * converts the whole document to JSON on each change. Paths in `changed` (JSON pointers) flash; their ancestors get a marker.
 *
 *   h(JsonTree, { value: state, changed: new Set(['/tasks/0']) })
 */
import { h, type ComponentChild } from 'preact'
import { useState } from 'preact/hooks'
import * as Y from 'yjs'

const PAGE = 200

export const pointer = (parent: string, key: string | number): string =>
  `${parent}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`

/** Every proper ancestor of each pointer ('' is the root). */
export const ancestorsOf = (paths: Iterable<string>): Set<string> => {
  const out = new Set<string>()
  for (const path of paths) {
    let p = path
    let i = p.lastIndexOf('/')
    while (i >= 0) {
      p = p.slice(0, i)
      out.add(p)
      i = p.lastIndexOf('/')
    }
  }
  return out
}

/** The value at a JSON pointer, or undefined. */
export const valueAt = (value: unknown, path: string): unknown => {
  if (path === '') return value
  let node = value
  for (const raw of path.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string, unknown>)[key]
  }
  return node
}

type Container = Record<string, unknown> | unknown[] | Y.Map<unknown> | Y.Array<unknown>

/** Plain JSON containers, and the live document's Y.Map / Y.Array (read only as far as open). */
const isContainer = (v: unknown): v is Container =>
  v instanceof Y.Map || v instanceof Y.Array || (v !== null && typeof v === 'object' && !(v instanceof Y.AbstractType))

const sizeOf = (v: Container): number =>
  v instanceof Y.Map ? v.size : v instanceof Y.Array ? v.length : Array.isArray(v) ? v.length : Object.keys(v).length

const isList = (v: Container): boolean => v instanceof Y.Array || Array.isArray(v)

/** Children as [key, value]; map keys sorted, as readState sorts them. */
const entriesOf = (v: Container): Array<[string, unknown]> => {
  if (v instanceof Y.Map) return Array.from(v.keys()).sort().map(k => [k, v.get(k)])
  if (v instanceof Y.Array) return v.toArray().map((x, i) => [String(i), x])
  return Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v)
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

interface NodeProps {
  name: string
  value: unknown
  path: string
  depth: number
  changed: Set<string>
  touched: Set<string>
}

const Node = ({ name, value, path, depth, changed, touched }: NodeProps): ComponentChild => {
  // Open at first: the root, and the way down to what changed (a diff's paths).
  const [open, setOpen] = useState(depth < 1 || touched.has(path))
  const [shown, setShown] = useState(PAGE)
  const cls = `node${changed.has(path) ? ' changed' : touched.has(path) ? ' touched' : ''}`
  const label = h('span', { class: 'key' }, name)
  if (!isContainer(value)) {
    return h('div', { class: cls, 'data-path': path }, label, h('span', { class: `scalar t-${value === null ? 'null' : typeof value}`, title: typeof value === 'string' && value.length > 300 ? value.slice(0, 5000) : undefined }, scalarText(value)))
  }
  const entries = open ? entriesOf(value) : []
  const total = sizeOf(value)
  return h('div', { class: cls, 'data-path': path },
    h('button', { class: 'toggle', 'aria-expanded': open, onClick: () => { setOpen(!open) } }, open ? '▾' : '▸', ' ', label, h('span', { class: 'summary' }, summary(value))),
    open && h('div', { class: 'children' },
      entries.slice(0, shown).map(([k, v]) => h(Node, { key: k, name: k, value: v, path: pointer(path, k), depth: depth + 1, changed, touched })),
      total > shown && h('button', { class: 'more', onClick: () => { setShown(shown + PAGE) } }, `show ${Math.min(PAGE, total - shown)} more of ${total - shown}`)
    )
  )
}

export const JsonTree = ({ value, changed = new Set<string>() }: { value: unknown, changed?: Set<string> }): ComponentChild =>
  h('div', { class: 'tree' }, h(Node, { name: 'state', value, path: '', depth: 0, changed, touched: ancestorsOf(changed) }))
