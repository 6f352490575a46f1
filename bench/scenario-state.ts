/**
 * Scenario `state` (only when named: `npm run bench -- --only state`): what `handle.state` costs
 * on a big workflow after each remote change, with the SDK's structural sharing
 * (src/client/snapshot.ts: rebuild only the changed paths) against the previous approach (drop
 * the snapshot on every change, rebuild and deep-freeze all of it on the next read).
 *
 * In one process, no server: a writer Y.Doc makes one change per update (a task field edit, or a
 * task inserted at the front, which shifts every index) and a reader Y.Doc applies it and reads
 * the state, as a UI re-rendering after each remote edit would. `apply only` is the floor: the
 * Yjs update alone. Writes bench/results/state.{md,json}.
 */
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import * as Y from 'yjs'
import type { Context } from './context.ts'
import { root } from './servers.ts'
import { latency, spread, type Latency, type Spread } from './stats.ts'
import { createSnapshot } from '../src/client/snapshot.ts'
import { readState, setMapContents, stateRoot, toYValue } from '../src/model/json-yjs.ts'
import { deepFreeze, type JsonObject } from '../src/model/json.ts'

type Strategy = 'apply only' | 'full rebuild' | 'structural sharing'
type Change = 'edit a task field' | 'insert a task at the front'
const STRATEGIES: Strategy[] = ['apply only', 'full rebuild', 'structural sharing']
const CHANGES: Change[] = ['edit a task field', 'insert a task at the front']

export interface StateRow { tasks: number, change: Change, strategy: Strategy, perUpdateUs: Spread, last: Latency }
export interface StateResult { updates: number, rows: StateRow[] }

const task = (i: number): JsonObject => ({
  id: `t${i}`, title: `task number ${i}`, status: 'todo', owner: `agent-${i % 7}`,
  tags: ['alpha', 'beta'], meta: { attempts: 0, notes: 'none yet' }
})

/** The updates a writer makes, recorded once so every strategy applies the same bytes. */
const recordUpdates = (tasks: number, change: Change, updates: number): { base: Uint8Array, steps: Uint8Array[] } => {
  const doc = new Y.Doc()
  const state = stateRoot(doc)
  setMapContents(state, { config: { model: 'small', limits: { tokens: 1000 } }, tasks: Array.from({ length: tasks }, (_, i) => task(i)) })
  const base = Y.encodeStateAsUpdate(doc)
  const steps: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => { steps.push(u) })
  const list = state.get('tasks') as Y.Array<Y.Map<unknown>>
  for (let n = 0; n < updates; n++) {
    if (change === 'edit a task field') list.get((n * 7919) % list.length).set('status', `s${n}`)
    else list.insert(0, [toYValue(task(tasks + n)) as Y.Map<unknown>])
  }
  doc.destroy()
  return { base, steps }
}

/** Microseconds per update (apply + read) for one strategy. */
const measure = (strategy: Strategy, base: Uint8Array, steps: Uint8Array[]): number[] => {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, base)
  const state = stateRoot(doc)
  let read: () => unknown = () => null
  if (strategy === 'full rebuild') {
    let cached: JsonObject | null = null
    state.observeDeep(() => { cached = null })
    read = () => { cached ??= deepFreeze(readState(doc)); return cached }
  } else if (strategy === 'structural sharing') {
    const snap = createSnapshot(state)
    state.observeDeep(events => { snap.apply(events) })
    read = snap.read
  }
  read()
  const out: number[] = []
  for (const step of steps) {
    const t0 = performance.now()
    Y.applyUpdate(doc, step)
    read()
    out.push((performance.now() - t0) * 1000)
  }
  doc.destroy()
  return out
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

export const runState = async (ctx: Context): Promise<StateResult> => {
  const updates = ctx.quick ? 50 : 100
  const rows: StateRow[] = []
  for (const tasks of ctx.quick ? [1000, 10_000] : [1000, 10_000, 50_000]) {
    for (const change of CHANGES) {
      const { base, steps } = recordUpdates(tasks, change, updates)
      for (const strategy of STRATEGIES) {
        const runs: number[] = []
        let last: number[] = []
        // A full rebuild of a big state takes long: fewer updates measure it well enough.
        const used = strategy === 'full rebuild' && tasks >= 10_000 ? steps.slice(0, 20) : steps
        for (let r = 0; r < ctx.runs; r++) {
          last = measure(strategy, base, used)
          runs.push(mean(last))
        }
        const row: StateRow = { tasks, change, strategy, perUpdateUs: spread(runs), last: latency(last) }
        rows.push(row)
        ctx.log(`  ${tasks} tasks, ${change}, ${strategy}: ${row.perUpdateUs.median.toFixed(1)} us per update (p99 ${row.last.p99.toFixed(1)} us)`)
      }
    }
  }
  const result: StateResult = { updates, rows }
  const fmt = (us: number): string => us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} us`
  const lines = [
    '# Cost of `state` after each remote change',
    '',
    `${updates} updates per row (20 for a full rebuild of 10,000 tasks or more), median of ${ctx.runs} run(s) of the mean per update (apply the Yjs update, then read \`state\`); p99 from the last run.`,
    '',
    '| tasks | change | apply only | full rebuild | structural sharing | speedup |',
    '|---:|---|---:|---:|---:|---:|'
  ]
  for (const tasks of Array.from(new Set(rows.map(r => r.tasks)))) {
    for (const change of CHANGES) {
      const get = (s: Strategy): StateRow => rows.find(r => r.tasks === tasks && r.change === change && r.strategy === s) as StateRow
      const [floor, full, shared] = STRATEGIES.map(get) as [StateRow, StateRow, StateRow]
      lines.push(`| ${tasks} | ${change} | ${fmt(floor.perUpdateUs.median)} | ${fmt(full.perUpdateUs.median)} (p99 ${fmt(full.last.p99)}) | ${fmt(shared.perUpdateUs.median)} (p99 ${fmt(shared.last.p99)}) | ${(full.perUpdateUs.median / shared.perUpdateUs.median).toFixed(0)}x |`)
    }
  }
  const dir = path.join(root, ctx.quick ? '.scratch' : 'bench/results')
  await writeFile(path.join(dir, 'state.md'), lines.join('\n') + '\n')
  await writeFile(path.join(dir, 'state.json'), JSON.stringify(result, null, 2) + '\n')
  return result
}
