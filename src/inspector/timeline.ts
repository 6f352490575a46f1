/**
 * The timeline of versions, newest first, as a virtualised list: only the rows on screen are in
 * the DOM and version records are fetched in pages of PAGE as they scroll into view, so 10,000
 * versions cost one page. Snapshots are marked on their version. Keyboard: ↑/↓ (or k/j) newer
 * and older, PageUp/PageDown by 20, Home/End newest/oldest; shift+click picks the compare base.
 *
 *   h(Timeline, { api, remote, id, head, selected, onSelect, snapshots })
 */
import { h, type ComponentChild } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { SnapshotRecord } from '../index.ts'
import type { Api } from './api.ts'
import type { RecordSummary } from './protocol.ts'
import type { Remote } from './remote.ts'
import { time } from './list.ts'

export const ROW = 30
const PAGE = 200
const OVERSCAN = 8

export interface TimelineProps {
  api: Api
  remote: Remote
  id: string
  head: number
  selected: number | null
  compareFrom: number | null
  snapshots: SnapshotRecord[]
  onSelect: (version: number, how: { replace: boolean, compare: boolean }) => void
  onError: (err: unknown) => void
}

const block = (version: number): number => Math.floor((version - 1) / PAGE)

export const Timeline = (p: TimelineProps): ComponentChild => {
  const records = useRef(new Map<number, RecordSummary>())
  const loaded = useRef(new Set<number>())
  const [, setTick] = useState(0)
  const [scrollTop, setScrollTop] = useState(0)
  const [height, setHeight] = useState(600)
  const box = useRef<HTMLDivElement>(null)

  useEffect(() => {
    records.current.clear()
    loaded.current.clear()
  }, [p.id])

  const load = (b: number): void => {
    if (loaded.current.has(b)) return
    loaded.current.add(b)
    // The server takes `before` up to head + 1 (newest first from there).
    const before = Math.min((b + 1) * PAGE + 1, p.head + 1)
    // Through the worker: a record holds its version's ops, so one page can be megabytes of JSON.
    p.remote.history(p.id, p.api.token(), PAGE, before).then(page => {
      for (const r of page) records.current.set(r.version, r)
      // A block at the head is incomplete until the head moves past it: read it again then.
      if (page.length < PAGE) loaded.current.delete(b)
      setTick(t => t + 1)
    }, err => {
      loaded.current.delete(b)
      p.onError(err)
    })
  }

  useEffect(() => {
    const el = box.current
    if (el === null) return
    const observer = new ResizeObserver(() => { setHeight(el.clientHeight) })
    observer.observe(el)
    return () => { observer.disconnect() }
  }, [])

  const first = Math.max(0, Math.floor(scrollTop / ROW) - OVERSCAN)
  const last = Math.min(p.head, Math.ceil((scrollTop + height) / ROW) + OVERSCAN)
  const visible: number[] = []
  for (let i = first; i < last; i++) visible.push(p.head - i)

  useEffect(() => {
    for (const v of visible) if (!records.current.has(v)) load(block(v))
  })

  // Keep the selected row on screen when the keyboard (or a URL) moves it.
  useEffect(() => {
    const el = box.current
    if (el === null || p.selected === null) return
    const top = (p.head - p.selected) * ROW
    if (top < el.scrollTop) el.scrollTop = top
    else if (top + ROW > el.scrollTop + el.clientHeight) el.scrollTop = top + ROW - el.clientHeight
  }, [p.selected])

  const snapshotsAt = new Map<number, SnapshotRecord[]>()
  for (const s of p.snapshots) snapshotsAt.set(s.version, [...(snapshotsAt.get(s.version) ?? []), s])

  const onKey = (e: KeyboardEvent): void => {
    const current = p.selected ?? p.head
    const step: Record<string, number> = { ArrowDown: -1, j: -1, ArrowUp: 1, k: 1, PageDown: -20, PageUp: 20, Home: Number.POSITIVE_INFINITY, End: Number.NEGATIVE_INFINITY }
    const d = step[e.key]
    if (d === undefined || p.head === 0) return
    e.preventDefault()
    p.onSelect(Math.min(p.head, Math.max(1, current + d)), { replace: true, compare: false })
  }

  return h('div', {
    class: 'timeline',
    ref: box,
    tabIndex: 0,
    role: 'listbox',
    'aria-label': 'versions',
    'data-head': p.head,
    onScroll: (e: Event) => { setScrollTop((e.target as HTMLElement).scrollTop) },
    onKeyDown: onKey
  }, h('div', { style: { height: `${p.head * ROW}px`, position: 'relative' } }, visible.map(v => {
    const r = records.current.get(v)
    const snaps = snapshotsAt.get(v) ?? []
    const cls = `row${v === p.selected ? ' selected' : ''}${v === p.compareFrom ? ' base' : ''}`
    return h('div', {
      key: v,
      class: cls,
      role: 'option',
      'aria-selected': v === p.selected,
      'data-version': v,
      style: { top: `${(p.head - v) * ROW}px`, height: `${ROW}px` },
      onClick: (e: MouseEvent) => { p.onSelect(v, { replace: false, compare: e.shiftKey }) }
    },
    h('span', { class: 'num' }, `v${v}`),
    r === undefined
      ? h('span', { class: 'muted' }, '…')
      : [
          h('span', { class: 'author', title: r.author }, r.author),
          h('span', { class: 'desc', title: r.description }, r.description),
          h('span', { class: 'time' }, time(r.timestamp)),
          (r.meta.runId !== undefined || r.meta.traceId !== undefined) && h('span', { class: 'ids', title: `run ${r.meta.runId ?? '-'} trace ${r.meta.traceId ?? '-'}` }, r.meta.runId ?? r.meta.traceId)
        ],
    snaps.map(s => h('span', { class: 'snap', key: s.id, title: `${s.kind} snapshot by ${s.createdBy}: ${s.description}` }, `⚑ ${s.name}`))
    )
  })))
}
