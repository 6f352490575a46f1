/**
 * One version, or two compared: the state at the later one (lazy tree, changed paths marked),
 * the RFC 6902 ops between them and, per op, the value before and after side by side.
 *
 *   h(VersionView, { api, id, from: 4, to: 5, record })
 */
import { h, type ComponentChild } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { JsonObject, JsonPatchOp, VersionRecord } from '../index.ts'
import type { Api } from './api.ts'
import { time } from './list.ts'
import { JsonTree, scalarText, valueAt } from './tree.ts'

interface Loaded {
  from: JsonObject
  to: JsonObject
  ops: JsonPatchOp[]
  record: VersionRecord | null
}

/** Ops listed before "show all": a restore of a big state can be thousands of them. */
const OPS_SHOWN = 300

const stateAt = async (api: Api, id: string, version: number): Promise<JsonObject> =>
  version === 0 ? {} : (await api.get<{ state: JsonObject }>(`/v1/workflows/${encodeURIComponent(id)}?version=${version}`)).state

const Value = ({ value }: { value: unknown }): ComponentChild =>
  value === undefined ? h('span', { class: 'muted' }, '(absent)') : h('code', null, scalarText(value))

/** Raw ops as JSON, built only when opened and cut at RAW_CHARS (one op can hold a whole 5 MB state). */
const RAW_CHARS = 100_000
const RawOps = ({ ops }: { ops: JsonPatchOp[] }): ComponentChild => {
  const [open, setOpen] = useState(false)
  let text = ''
  if (open) {
    text = JSON.stringify(ops.slice(0, 2000), null, 2)
    if (text.length > RAW_CHARS) text = `${text.slice(0, RAW_CHARS)}\n… (${text.length - RAW_CHARS} more characters)`
  }
  return h('details', { class: 'raw', onToggle: (e: Event) => { setOpen((e.target as HTMLDetailsElement).open) } }, h('summary', null, 'RFC 6902 ops (JSON)'), open && h('pre', null, text))
}

export const VersionView = ({ api, id, from, to, onError }: { api: Api, id: string, from: number, to: number, onError: (err: unknown) => void }): ComponentChild => {
  const [data, setData] = useState<Loaded | null>(null)
  const [all, setAll] = useState(false)
  useEffect(() => {
    let stale = false
    setData(null)
    const wid = encodeURIComponent(id)
    Promise.all([
      stateAt(api, id, from),
      stateAt(api, id, to),
      api.get<JsonPatchOp[]>(`/v1/workflows/${wid}/diff?from=${from}&to=${to}`),
      api.get<VersionRecord[]>(`/v1/workflows/${wid}/history?limit=1&before=${to + 1}`)
    ]).then(([a, b, ops, records]) => {
      if (!stale) setData({ from: a, to: b, ops, record: records[0]?.version === to ? records[0] : null })
    }, onError)
    return () => { stale = true }
  }, [id, from, to])

  if (data === null) return h('p', { class: 'muted' }, `loading version ${to}…`)
  const { record, ops } = data
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
    h('h4', null, `Diff from v${from}: ${ops.length} op${ops.length === 1 ? '' : 's'}`),
    h('table', { class: 'diff' },
      h('thead', null, h('tr', null, h('th', null, 'op'), h('th', null, 'path'), h('th', null, `v${from}`), h('th', null, `v${to}`))),
      h('tbody', null, (all ? ops : ops.slice(0, OPS_SHOWN)).map((op, i) => h('tr', { key: i, class: `op-${op.op}` },
        h('td', { class: 'op' }, op.op),
        h('td', { class: 'path' }, op.from === undefined ? op.path : `${op.from} → ${op.path}`),
        h('td', { class: 'before' }, h(Value, { value: valueAt(data.from, op.from ?? op.path) })),
        h('td', { class: 'after' }, h(Value, { value: valueAt(data.to, op.path) }))
      )))
    ),
    !all && ops.length > OPS_SHOWN && h('button', { onClick: () => { setAll(true) } }, `show all ${ops.length} ops`),
    h(RawOps, { ops }),
    h('h4', null, `State at v${to}`),
    h(JsonTree, { value: data.to, changed: new Set(ops.map(op => op.path)) })
  )
}
