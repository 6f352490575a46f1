/**
 * A collapsible JSON tree that renders lazily: a node's children exist in the DOM only while it
 * is open, and at most TREE_PAGE of them until "more" is asked for, so a 5 MB state costs what
 * is on screen. The data is not here: the tree shows the views the data worker sends for the
 * containers it has open (remote.ts), of the live document or of a version's state. Paths in
 * `changed` (JSON pointers) flash; their ancestors get a marker.
 *
 *   h(JsonTree, { source: session.tree, changed: new Set(['/tasks/0']) })
 */
import { h, type ComponentChild } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { TREE_PAGE, type Entry } from './protocol.ts'
import type { TreeSource } from './remote.ts'

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

const summary = (size: number | undefined, list: boolean | undefined): string => {
  if (size === undefined) return '…'
  return list === true ? `[…] ${size} item${size === 1 ? '' : 's'}` : `{…} ${size} key${size === 1 ? '' : 's'}`
}

interface NodeProps {
  name: string
  /** What the parent's view says of this node; null for the root. */
  entry: Entry | null
  path: string
  depth: number
  changed: Set<string>
  touched: Set<string>
  source: TreeSource
}

const Node = ({ name, entry, path, depth, changed, touched, source }: NodeProps): ComponentChild => {
  // Open at first: the root, and the way down to what changed (a diff's paths).
  const [open, setOpen] = useState(depth < 1 || touched.has(path))
  const [shown, setShown] = useState(TREE_PAGE)
  const container = entry === null || entry.type === 'container'
  useEffect(() => container && open ? source.watch(path, shown) : undefined, [container, open, shown, source, path])
  // The root's size comes from its own view, so it is watched even while collapsed.
  useEffect(() => entry === null ? source.watch(path, 0) : undefined, [entry === null, source, path])
  const cls = `node${changed.has(path) ? ' changed' : touched.has(path) ? ' touched' : ''}`
  const label = h('span', { class: 'key' }, name)
  if (entry !== null && entry.type !== 'container') {
    return h('div', { class: cls, 'data-path': path }, label, h('span', { class: `scalar t-${entry.type}`, title: entry.title }, entry.text))
  }
  const view = source.view(path)
  const total = view?.size ?? entry?.size
  return h('div', { class: cls, 'data-path': path },
    h('button', { class: 'toggle', 'aria-expanded': open, onClick: () => { setOpen(!open) } }, open ? '▾' : '▸', ' ', label, h('span', { class: 'summary' }, summary(total, view?.list ?? entry?.list))),
    open && h('div', { class: 'children' },
      view === undefined
        ? h('span', { class: 'muted' }, '…')
        : view !== null && [
          view.entries.slice(0, shown).map(e => h(Node, { key: e.key, name: e.key, entry: e, path: pointer(path, e.key), depth: depth + 1, changed, touched, source })),
          view.size > shown && h('button', { class: 'more', onClick: () => { setShown(shown + TREE_PAGE) } }, `show ${Math.min(TREE_PAGE, view.size - shown)} more of ${view.size - shown}`)
        ]
    )
  )
}

export const JsonTree = ({ source, changed = new Set<string>() }: { source: TreeSource, changed?: Set<string> }): ComponentChild => {
  const [, setTick] = useState(0)
  useEffect(() => source.subscribe(() => { setTick(t => t + 1) }), [source])
  return h('div', { class: 'tree' }, h(Node, { name: 'state', entry: null, path: '', depth: 0, changed, touched: ancestorsOf(changed), source }))
}
