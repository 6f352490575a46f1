/**
 * The live runtime panel of a workflow: who is connected, the agents' lifecycle status, the
 * task stack and queue (pending, claimed by whom until when, done, failed) and the session.
 *
 *   h(RuntimePanel, { live })
 */
import { h, type ComponentChild } from 'preact'
import type { TaskRecord } from '../index.ts'
import type { LiveWorkflow } from './live.ts'
import { time } from './list.ts'

const lease = (t: TaskRecord): string => {
  if (t.status !== 'claimed' || t.claimedAt === null || t.leaseMs === null) return ''
  const left = t.claimedAt + t.leaseMs - Date.now()
  return left > 0 ? `lease ends in ${Math.ceil(left / 1000)} s` : 'lease expired'
}

export const RuntimePanel = ({ live }: { live: LiveWorkflow }): ComponentChild => {
  const rt = live.runtime
  const tasks = rt === null ? [] : Object.values(rt.tasks).sort((a, b) => b.seq - a.seq)
  const agents = rt === null ? [] : Object.entries(rt.agents).sort(([a], [b]) => a.localeCompare(b))
  const s = rt?.session
  return h('div', { class: 'runtime' },
    h('section', { class: 'session' },
      h('h4', null, 'Session'),
      s === undefined
        ? h('p', { class: 'muted' }, '…')
        : s.paused
          ? h('p', { class: 'paused' }, `paused by ${s.pausedBy ?? '?'}${s.pausedAt === undefined ? '' : ` at ${time(s.pausedAt)}`}: ${s.reason ?? 'no reason given'}`)
          : h('p', { class: 'running' }, `running${s.resumedBy === undefined ? '' : ` (resumed by ${s.resumedBy})`}`)
    ),
    h('section', { class: 'presence' },
      h('h4', null, `Connected (${live.presence.length})`),
      live.presence.length === 0 ? h('p', { class: 'muted' }, 'no other peer') : h('ul', null, live.presence.map(p => h('li', { key: p.clientId, title: `client ${p.clientId}` }, p.agentId)))
    ),
    h('section', { class: 'agents' },
      h('h4', null, 'Agents'),
      agents.length === 0
        ? h('p', { class: 'muted' }, 'no lifecycle recorded')
        : h('table', null, h('tbody', null, agents.map(([id, a]) => h('tr', { key: id },
          h('td', null, id), h('td', { class: `status st-${a.status}` }, a.status), h('td', null, `since ${time(a.since)}`), h('td', null, a.timedOut === undefined ? '' : `timed out in ${a.timedOut.status}`)
        ))))
    ),
    h('section', { class: 'tasks' },
      h('h4', null, `Tasks (${tasks.filter(t => t.status === 'pending').length} pending, ${tasks.filter(t => t.status === 'claimed').length} claimed)`),
      tasks.length === 0
        ? h('p', { class: 'muted' }, 'no tasks')
        : h('table', null,
          h('thead', null, h('tr', null, h('th', null, 'task'), h('th', null, 'kind'), h('th', null, 'status'), h('th', null, 'by'), h('th', null, ''))),
          h('tbody', null, tasks.slice(0, 200).map(t => h('tr', { key: t.id, class: `task st-${t.status}` },
            h('td', { title: JSON.stringify(t.payload)?.slice(0, 500) }, t.id),
            h('td', null, t.kind),
            h('td', { class: 'status' }, t.status),
            h('td', null, t.claimedBy ?? t.createdBy),
            h('td', null, t.status === 'failed' ? (t.error ?? 'failed') : lease(t))
          )))
        )
    )
  )
}
