/**
 * The workflow list: id, version, last update, fork of; newest first, filtered by id, live from
 * the list feed (GET /v1/watch/workflows): a workflow that gets a version moves to the top, a
 * new one appears (the list is re-read when the feed names an id it does not know).
 *
 *   h(WorkflowList, { api })
 */
import { h, type ComponentChild } from 'preact'
import { useEffect, useMemo, useState } from 'preact/hooks'
import type { Api, WorkflowSummary } from './api.ts'
import { navigate, routeUrl } from './route.ts'

export const time = (ms: number): string => new Date(ms).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' })

export const WorkflowList = ({ api, onError }: { api: Api, onError: (err: unknown) => void }): ComponentChild => {
  const [list, setList] = useState<WorkflowSummary[] | null>(null)
  const [filter, setFilter] = useState('')
  const [live, setLive] = useState(false)

  useEffect(() => {
    let stopped = false
    const load = (): void => {
      api.get<WorkflowSummary[]>('/v1/workflows').then(l => { if (!stopped) setList(l) }, onError)
    }
    load()
    const source = new EventSource(api.eventsUrl('/v1/watch/workflows'))
    source.onopen = () => { setLive(true) }
    source.onerror = () => { setLive(false) }
    source.addEventListener('workflow', ev => {
      const e = JSON.parse((ev as MessageEvent<string>).data) as { workflowId: string, version: number, updatedAt: number }
      setList(current => {
        if (current === null) return current
        if (!current.some(w => w.workflowId === e.workflowId)) {
          load()
          return current
        }
        return current.map(w => w.workflowId === e.workflowId ? { ...w, version: Math.max(w.version, e.version), updatedAt: Math.max(w.updatedAt, e.updatedAt) } : w)
      })
    })
    return () => {
      stopped = true
      source.close()
    }
  }, [api])

  const shown = useMemo(() => (list ?? [])
    .filter(w => w.workflowId.toLowerCase().includes(filter.toLowerCase()))
    .sort((a, b) => b.updatedAt - a.updatedAt), [list, filter])

  return h('section', { class: 'list' },
    h('div', { class: 'toolbar' },
      h('h2', null, 'Workflows'),
      h('input', { type: 'search', placeholder: 'filter by id', value: filter, 'aria-label': 'filter by id', onInput: (e: Event) => { setFilter((e.target as HTMLInputElement).value) } }),
      h('span', { class: `live ${live ? 'on' : 'off'}`, title: live ? 'receiving updates' : 'not connected to the list feed' }, live ? '● live' : '○ offline')
    ),
    list === null
      ? h('p', { class: 'muted' }, 'loading…')
      : h('table', { class: 'workflows' },
        h('thead', null, h('tr', null, h('th', null, 'id'), h('th', null, 'version'), h('th', null, 'updated'), h('th', null, 'fork of'))),
        h('tbody', null, shown.map(w => h('tr', { key: w.workflowId, 'data-id': w.workflowId },
          h('td', null, h('a', { href: routeUrl({ kind: 'workflow', id: w.workflowId }), onClick: (e: MouseEvent) => { e.preventDefault(); navigate({ kind: 'workflow', id: w.workflowId }) } }, w.workflowId)),
          h('td', { class: 'num version' }, String(w.version)),
          h('td', null, time(w.updatedAt)),
          h('td', { class: 'fork-of' }, w.forkOf === null ? '' : `${w.forkOf.workflowId} at v${w.forkOf.version}`)
        )))
      ),
    list !== null && shown.length === 0 && h('p', { class: 'muted' }, list.length === 0 ? 'no workflows yet' : 'no workflow matches the filter')
  )
}
