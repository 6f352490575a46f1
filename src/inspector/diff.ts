/**
 * One version, or two compared: the state at the later one (lazy tree, changed paths marked),
 * the RFC 6902 ops between them and, per op, the value before and after side by side. The two
 * states and the ops are fetched and parsed by the data worker (a version of a 5 MB workflow is
 * three 5 MB JSON bodies); the page gets the first rows and the open part of the tree.
 *
 *   h(VersionView, { api, remote, id, from: 4, to: 5, onError })
 */
import { h, type ComponentChild } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { Api } from './api.ts'
import { time } from './list.ts'
import { OPS_SHOWN, type DiffRow, type RecordSummary } from './protocol.ts'
import { errorFrom, type Remote, type RemoteSession } from './remote.ts'
import { JsonTree } from './tree.ts'

interface Loaded {
  record: RecordSummary | null
  count: number
  rows: DiffRow[]
  changed: Set<string>
  raw: string | null
}

const Value = ({ value }: { value: string | null }): ComponentChild =>
  value === null ? h('span', { class: 'muted' }, '(absent)') : h('code', null, value)

/** Raw ops as JSON, made by the worker only when opened (cut at RAW_CHARS). */
const RawOps = ({ session, text }: { session: RemoteSession, text: string | null }): ComponentChild => {
  const [open, setOpen] = useState(false)
  return h('details', {
    class: 'raw',
    onToggle: (e: Event) => {
      const isOpen = (e.target as HTMLDetailsElement).open
      setOpen(isOpen)
      if (isOpen && text === null) session.request('raw')
    }
  }, h('summary', null, 'RFC 6902 ops (JSON)'), open && h('pre', null, text ?? '…'))
}

export const VersionView = ({ api, remote, id, from, to, onError }: { api: Api, remote: Remote, id: string, from: number, to: number, onError: (err: unknown) => void }): ComponentChild => {
  const [data, setData] = useState<Loaded | null>(null)
  const [session, setSession] = useState<RemoteSession | null>(null)
  const [all, setAll] = useState(false)
  useEffect(() => {
    setData(null)
    setAll(false)
    const s = remote.open({ type: 'version', id, from, to, token: api.token() }, m => {
      if (m.type === 'version') setData({ record: m.record, count: m.count, rows: m.rows, changed: new Set(m.changed), raw: null })
      else if (m.type === 'rows') setData(d => d === null ? d : { ...d, rows: m.rows })
      else if (m.type === 'raw') setData(d => d === null ? d : { ...d, raw: m.text })
      else if (m.type === 'error') onError(errorFrom(m.error))
    })
    setSession(s)
    return () => { s.close() }
  }, [id, from, to])

  if (data === null || session === null) return h('p', { class: 'muted' }, `loading version ${to}…`)
  const { record, count, rows } = data
  const compare = from !== to - 1
  return h('div', { class: 'version-view', 'data-from': from, 'data-to': to },
    h('h3', null, compare ? `v${from} → v${to}` : `Version ${to}`),
    record !== null && !compare && h('dl', { class: 'record' },
      h('dt', null, 'author'), h('dd', { class: 'author' }, record.author),
      h('dt', null, 'description'), h('dd', null, record.description),
      h('dt', null, 'time'), h('dd', null, time(record.timestamp)),
      record.meta.runId !== undefined && [h('dt', null, 'run'), h('dd', null, record.meta.runId)],
      record.meta.traceId !== undefined && [h('dt', null, 'trace'), h('dd', null, record.meta.traceId)],
      record.meta.toolCallId !== undefined && [h('dt', null, 'tool call'), h('dd', null, record.meta.toolCallId)]
    ),
    h('h4', null, `Diff from v${from}: ${count} op${count === 1 ? '' : 's'}`),
    h('table', { class: 'diff' },
      h('thead', null, h('tr', null, h('th', null, 'op'), h('th', null, 'path'), h('th', null, `v${from}`), h('th', null, `v${to}`))),
      h('tbody', null, (all ? rows : rows.slice(0, OPS_SHOWN)).map((row, i) => h('tr', { key: i, class: `op-${row.op}` },
        h('td', { class: 'op' }, row.op),
        h('td', { class: 'path' }, row.path),
        h('td', { class: 'before' }, h(Value, { value: row.before })),
        h('td', { class: 'after' }, h(Value, { value: row.after }))
      )))
    ),
    !all && count > OPS_SHOWN && h('button', {
      onClick: () => {
        setAll(true)
        if (rows.length < count) session.request('rows')
      }
    }, `show all ${count} ops`),
    h(RawOps, { key: `${from}:${to}`, session, text: data.raw }),
    h('h4', null, `State at v${to}`),
    h(JsonTree, { key: `${from}:${to}`, source: session.tree, changed: data.changed })
  )
}
