/**
 * A workflow's page: the timeline (left) and what is chosen on it (right): the live state with
 * its runtime, one version with its diff, or two versions compared; below, snapshots,
 * conflicts and violations, and the history actions (restore, fork, promote, discard), which
 * are disabled with the reason when the token lacks the right.
 *
 *   h(WorkflowPage, { api, route })
 */
import { h, type ComponentChild } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { ConflictRecord, SnapshotRecord, ViolationRecord } from '../index.ts'
import type { Api, Right, WorkflowSummary } from './api.ts'
import { InspectorError } from './api.ts'
import { VersionView } from './diff.ts'
import { useLiveWorkflow } from './live.ts'
import { time } from './list.ts'
import type { Remote } from './remote.ts'
import { navigate, routeUrl, type Route } from './route.ts'
import { RuntimePanel } from './runtime.ts'
import { Timeline } from './timeline.ts'
import { JsonTree } from './tree.ts'

type WorkflowRoute = Exclude<Route, { kind: 'list' }>

interface Props {
  api: Api
  remote: Remote
  route: WorkflowRoute
  onError: (err: unknown) => void
  onNotice: (text: string) => void
}

export const WorkflowPage = (p: Props): ComponentChild => {
  const [summary, setSummary] = useState<WorkflowSummary | null>(null)
  useEffect(() => {
    setSummary(null)
    p.api.get<WorkflowSummary[]>('/v1/workflows').then(list => {
      const found = list.find(w => w.workflowId === p.route.id)
      if (found === undefined) p.onError(new InspectorError('NOT_FOUND', `no workflow ${p.route.id} (or no read access to it)`))
      else setSummary(found)
    }, p.onError)
  }, [p.route.id])
  if (summary === null) return h('p', { class: 'muted' }, `loading ${p.route.id}…`)
  return h(Loaded, { ...p, summary, key: p.route.id })
}

const Action = ({ api, id, right, label, onRun }: { api: Api, id: string, right: Right, label: string, onRun: () => Promise<unknown> }): ComponentChild => {
  const refusal = api.refusal(id, right)
  const [busy, setBusy] = useState(false)
  return h('span', { class: 'action' },
    h('button', {
      disabled: refusal !== null || busy,
      title: refusal ?? undefined,
      'data-action': label,
      onClick: () => {
        setBusy(true)
        onRun().finally(() => { setBusy(false) })
      }
    }, label),
    refusal !== null && h('small', { class: 'refusal' }, refusal)
  )
}

const Loaded = ({ api, remote, route, summary, onError, onNotice }: Props & { summary: WorkflowSummary }): ComponentChild => {
  const id = route.id
  const wid = encodeURIComponent(id)
  const live = useLiveWorkflow(remote, id, api.token(), summary.version, onError)
  const head = Math.max(summary.version, live.head)
  const [snapshots, setSnapshots] = useState<SnapshotRecord[]>([])
  const [conflicts, setConflicts] = useState<ConflictRecord[]>([])
  const [violations, setViolations] = useState<ViolationRecord[]>([])
  const [refresh, setRefresh] = useState(0)

  // Side lists follow the head, at most twice a second.
  useEffect(() => {
    const timer = setTimeout(() => {
      api.get<SnapshotRecord[]>(`/v1/workflows/${wid}/snapshots`).then(setSnapshots, onError)
      api.get<ConflictRecord[]>(`/v1/workflows/${wid}/conflicts`).then(setConflicts, onError)
      api.get<ViolationRecord[]>(`/v1/workflows/${wid}/violations`).then(setViolations, onError)
    }, refresh === 0 && head === summary.version ? 0 : 500)
    return () => { clearTimeout(timer) }
  }, [head, refresh])

  const selected = route.kind === 'version' ? route.version : route.kind === 'compare' ? route.to : null
  const compareFrom = route.kind === 'compare' ? route.from : null
  const select = (v: number, how: { replace: boolean, compare: boolean }): void => {
    if (how.compare && selected !== null && selected !== v) navigate({ kind: 'compare', id, from: Math.min(selected, v), to: Math.max(selected, v) })
    else navigate({ kind: 'version', id, version: v }, { replace: how.replace })
  }
  const run = (what: string, fn: () => Promise<unknown>) => async (): Promise<void> => {
    try {
      await fn()
      onNotice(what)
      setRefresh(r => r + 1)
    } catch (err) {
      onError(err)
    }
  }
  const restore = (body: { version?: number, snapshotId?: string }, what: string) => run(what, async () => {
    const record = await api.post<{ version: number }>(`/v1/workflows/${wid}/restore`, body)
    navigate({ kind: 'version', id, version: record.version })
  })

  return h('div', { class: 'workflow' },
    h('div', { class: 'wf-head' },
      h('h2', null, id),
      h('span', { class: 'muted' }, `v${head}${summary.forkOf === null ? '' : ` · fork of ${summary.forkOf.workflowId} at v${summary.forkOf.version}`} · ${live.synced ? 'live' : 'connecting…'}`),
      h('a', { href: routeUrl({ kind: 'workflow', id }), class: route.kind === 'workflow' ? 'current' : '', onClick: (e: MouseEvent) => { e.preventDefault(); navigate({ kind: 'workflow', id }) } }, 'live state'),
      h('span', { class: 'actions' },
        selected !== null && h(Action, { api, id, right: 'write', label: `restore v${selected}`, onRun: restore({ version: selected }, `restored v${selected}`) }),
        h(Action, {
          api, id, right: 'admin', label: selected === null ? 'fork' : `fork at v${selected}`,
          onRun: run('forked', async () => {
            const fork = await api.post<{ workflowId: string }>(`/v1/workflows/${wid}/fork`, selected === null ? {} : { version: selected })
            navigate({ kind: 'workflow', id: fork.workflowId })
          })
        }),
        // Promote merges the fork into its parent and deletes it: the parent is what is left to show.
        summary.forkOf !== null && h(Action, { api, id, right: 'admin', label: 'promote', onRun: run(`promoted ${id} into ${summary.forkOf.workflowId}`, async () => { await api.post(`/v1/workflows/${wid}/promote`); navigate({ kind: 'workflow', id: (summary.forkOf as { workflowId: string }).workflowId }) }) }),
        summary.forkOf !== null && h(Action, { api, id, right: 'admin', label: 'discard', onRun: run(`discarded ${id}`, async () => { await api.post(`/v1/workflows/${wid}/discard`); navigate({ kind: 'list' }) }) })
      )
    ),
    h('div', { class: 'panes' },
      h('div', { class: 'left' },
        h('h3', null, `Timeline (${head} versions)`),
        h('p', { class: 'hint muted' }, '↑/↓ to step, shift+click to compare with the selected version'),
        h(Timeline, { api, remote, id, head, selected, compareFrom, snapshots, onSelect: select, onError }),
        h('section', { class: 'snapshots' },
          h('h4', null, `Snapshots (${snapshots.length})`),
          h('ul', null, snapshots.map(s => h('li', { key: s.id },
            h('a', { href: routeUrl({ kind: 'version', id, version: s.version }), onClick: (e: MouseEvent) => { e.preventDefault(); navigate({ kind: 'version', id, version: s.version }) } }, `v${s.version}`),
            ` ${s.name} (${s.kind}, ${s.createdBy}, ${time(s.createdAt)}) `,
            h(Action, { api, id, right: 'write', label: `restore ${s.name}`, onRun: restore({ snapshotId: s.id }, `restored snapshot ${s.name}`) })
          )))
        ),
        h(Records, { title: 'Conflicts', id, items: conflicts.map(c => ({ key: c.id, version: c.version, text: `${c.path}: ${c.writes.map(w => w.agent).join(' vs ')}, kept ${c.winner}${c.resolution === undefined ? '' : `, resolved by ${c.resolution.by}`}` })) }),
        h(Records, { title: 'Violations', id, items: violations.map(v => ({ key: v.id, version: v.version, text: `${v.kind} by ${v.agent} at ${v.paths.join(', ')}${v.reverted ? ' (reverted)' : ''}` })) })
      ),
      h('div', { class: 'right' },
        route.kind === 'workflow'
          ? h('div', { class: 'live-view' },
            h(RuntimePanel, { live }),
            h('h4', null, 'State (live)'),
            live.tree === null ? h('p', { class: 'muted' }, 'syncing…') : h(JsonTree, { source: live.tree, changed: live.changed }))
          : route.kind === 'version'
            ? h(VersionView, { api, remote, id, from: Math.max(0, route.version - 1), to: route.version, onError })
            : h(VersionView, { api, remote, id, from: route.from, to: route.to, onError })
      )
    )
  )
}

const Records = ({ title, id, items }: { title: string, id: string, items: Array<{ key: number, version: number, text: string }> }): ComponentChild =>
  h('section', { class: title.toLowerCase() },
    h('h4', null, `${title} (${items.length})`),
    items.length === 0
      ? h('p', { class: 'muted' }, 'none')
      : h('ul', null, items.slice(-200).reverse().map(i => h('li', { key: i.key },
        h('a', { href: routeUrl({ kind: 'version', id, version: i.version }), onClick: (e: MouseEvent) => { e.preventDefault(); navigate({ kind: 'version', id, version: i.version }) } }, `v${i.version}`),
        ` ${i.text}`
      )))
  )
