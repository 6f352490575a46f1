/**
 * Turns the results of a run into the markdown report (bench/results/bench.md), the target
 * verdicts, and the docs/benchmarks.md section between `<!-- bench:start -->` and `<!-- bench:end -->`.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { describeMachine, type Busy, type MachineInfo } from './machine.ts'
import type { Limits } from './limits.ts'
import type { SaturationResult } from './scenario-saturation.ts'
import type { ManyResult } from './scenario-many.ts'
import type { HotResult } from './scenario-hot.ts'
import type { ColdLoadResult } from './scenario-cold-load.ts'
import type { HeapResult } from './scenario-heap.ts'
import type { HistoryResult } from './scenario-history.ts'
import type { BundleResult } from './scenario-bundle.ts'
import { formatInspector, type InspectorResult } from './scenario-inspector.ts'
import type { Spread } from './stats.ts'
import type { Ladder, StepOutcome } from './steps.ts'

export interface Target { name: string, target: string, value: string, pass: boolean | null }

export interface BenchResults {
  date: string
  mode: 'full' | 'quick'
  durationSec: number
  machine: MachineInfo
  /** Per scenario: how busy other processes kept the machine. */
  busy: Record<string, Busy>
  /** Per scenario: the Accord commit measured (see machine.ts). */
  commits: Record<string, string>
  /** The machine each scenario ran on (describeHardware), where a re-run with --only moved one. */
  machines?: Record<string, string>
  /** Scenarios measured again later with --only (merged into these results). */
  rerun?: string[]
  limits?: Limits
  saturation?: SaturationResult
  many?: ManyResult
  hot?: HotResult
  cold?: ColdLoadResult
  heap?: HeapResult
  history?: HistoryResult
  bundle?: BundleResult
  inspector?: InspectorResult
  targets: Target[]
}

const int = (x: number): string => Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-'
const dec = (x: number, d = 2): string => Number.isFinite(x) ? x.toFixed(d) : '-'
const kb = (bytes: number): string => Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : '-'
const range = (s: Spread | undefined, f: (x: number) => string): string =>
  s === undefined ? '-' : s.runs.length > 1 ? `${f(s.median)} (${f(s.min)}-${f(s.max)})` : f(s.median)
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? '-' : `${(a / b).toFixed(2)}x`
const verdict = (pass: boolean | null): string => pass === null ? 'n/a' : pass ? 'met' : '**missed**'
const lower = (flag: boolean | undefined): string => flag === true ? ' (load-bound: at least)' : ''

export const evaluateTargets = (r: BenchResults): Target[] => {
  const t: Target[] = []
  const s = r.saturation
  if (s !== undefined) {
    const a = s.saturation.accord.median
    t.push({ name: 'saturated persisted throughput vs reference', target: '>= 5x', value: ratio(a, s.saturation.reference.median), pass: a >= 5 * s.saturation.reference.median })
    t.push({ name: 'saturated persisted throughput vs Accord without persistence', target: '>= 0.8x', value: ratio(a, s.saturation['accord-memory'].median), pass: a >= 0.8 * s.saturation['accord-memory'].median })
    const relay = s.bareRelay === undefined ? '' : ` (bare relay, one frame per update: ${dec(s.bareRelay.p99.median)} ms)`
    t.push({ name: `latency p99 at half of Accord's saturation (${int(s.halfRate)}/s)`, target: '<= 5 ms', value: `${dec(s.halfLatency.accord.p99.median)} ms${relay}`, pass: s.halfLatency.accord.p99.median <= 5 })
  }
  if (r.heap !== undefined) {
    t.push({ name: 'heap per loaded idle 1 KB workflow', target: '<= 30 KB', value: kb(r.heap.accordIdleBytes), pass: r.heap.accordIdleBytes <= 30 * 1024 })
    const c = r.heap.churn.accord
    if (c !== undefined) t.push({ name: `heap after ${int(r.heap.openedClosed)} workflows opened and closed`, target: 'within 10% of start', value: `${((c.ratio - 1) * 100).toFixed(1)}%`, pass: Math.abs(c.ratio - 1) <= 0.1 })
  }
  if (r.cold !== undefined) {
    const load = r.cold.accord.warmLoadMs.median
    t.push({ name: `cold load of a ${int(r.cold.updates)}-update workflow after compaction (running server)`, target: '<= 50 ms', value: `${dec(load, 1)} ms (fresh process, incl. opening LevelDB: ${dec(r.cold.accord.totalMs.median, 1)} ms)`, pass: load <= 50 })
  }
  if (r.history !== undefined) {
    t.push({ name: 'stateAt p50', target: '<= 20 ms', value: `${dec(r.history.stateAtMs.p50)} ms`, pass: r.history.stateAtMs.p50 <= 20 })
    const page = Math.max(r.history.historyPage100Ms.p50, r.history.historyHeadPage100Ms.p50)
    t.push({ name: 'history page of 100 (p50, newest and random position)', target: '<= 5 ms', value: `${dec(page)} ms`, pass: page <= 5 })
  }
  return t
}

const summaryRows = (r: BenchResults): string[] => {
  const rows: string[] = []
  const row = (...cells: string[]): void => { rows.push(`| ${cells.join(' | ')} |`) }
  const s = r.saturation
  const l = r.limits
  if (s !== undefined) {
    const [a, ref, mem] = [s.saturation.accord, s.saturation.reference, s.saturation['accord-memory']]
    row(`(1) ${s.workflows} workflows x ${s.agents} agents: saturated persisted updates/s`, range(a, int) + lower(s.loadBound.accord), range(ref, int) + lower(s.loadBound.reference), ratio(a.median, ref.median),
      `${range(mem, int)}${lower(s.loadBound['accord-memory'])} (Accord / it: ${ratio(a.median, mem.median)})`, l === undefined ? '-' : `LevelDB ${int(l.level[1]?.putsPerSecond ?? Number.NaN)} puts/s (batches of 100), ${int(l.level[0]?.putsPerSecond ?? Number.NaN)} (single)`)
    const h = s.halfLatency
    const limit = (pick: (f: { p50: Spread, p99: Spread }) => Spread, echo: number | undefined): string =>
      [s.bareRelay === undefined ? '' : `bare relay ${range(pick(s.bareRelay), dec)}`, echo === undefined ? '' : `ws echo ${dec(echo / 1000, 3)}`].filter(Boolean).join('; ') || '-'
    row(`(1) latency p50 at ${int(s.halfRate)}/s (half of Accord's saturation), ms`, range(h.accord.p50, dec), range(h.reference.p50, dec), ratio(h.accord.p50.median, h.reference.p50.median), range(h['accord-memory'].p50, dec), limit(f => f.p50, l?.echo.roundTrip.p50))
    row(`(1) latency p99 at ${int(s.halfRate)}/s, ms`, range(h.accord.p99, dec), range(h.reference.p99, dec), ratio(h.accord.p99.median, h.reference.p99.median), range(h['accord-memory'].p99, dec), limit(f => f.p99, l?.echo.roundTrip.p99))
  }
  const m = r.many
  if (m !== undefined) {
    row(`(2) ${int(m.workflows)} workflows x ${m.agents} agents at ${int(m.rate)}/s: persisted updates/s`, range(m.persisted.accord, int), range(m.persisted.reference, int), ratio(m.persisted.accord?.median, m.persisted.reference?.median), '', '')
    row('(2) latency p50 / p99, ms', `${range(m.p50.accord, dec)} / ${range(m.p99.accord, dec)}`, `${range(m.p50.reference, dec)} / ${range(m.p99.reference, dec)}`, `${ratio(m.p50.accord?.median, m.p50.reference?.median)} / ${ratio(m.p99.accord?.median, m.p99.reference?.median)}`, '', '')
    row(`(2) connect and sync all ${int(m.workflows * m.agents)} agents, ms`, int(m.connectMs.accord ?? Number.NaN), int(m.connectMs.reference ?? Number.NaN), ratio(m.connectMs.accord, m.connectMs.reference), '', '')
  }
  const h = r.hot
  if (h !== undefined) {
    row(`(3) one workflow x ${h.agents} agents: peak persisted updates/s`, range(h.peak.accord, int) + lower(h.loadBound.accord), range(h.peak.reference, int) + lower(h.loadBound.reference), ratio(h.peak.accord?.median, h.peak.reference?.median), '', '')
    row(`(3) latency p50 / p99 at ${h.rate}/s, ms`, `${range(h.p50.accord, dec)} / ${range(h.p99.accord, dec)}`, `${range(h.p50.reference, dec)} / ${range(h.p99.reference, dec)}`, `${ratio(h.p50.accord?.median, h.p50.reference?.median)} / ${ratio(h.p99.accord?.median, h.p99.reference?.median)}`, '', '')
  }
  const c = r.cold
  if (c !== undefined) {
    row(`(4) cold load of a ${int(c.updates)}-update workflow after compaction, in a running server (Accord: Workflow.load; reference: getYDoc after its flush), ms`, range(c.accord.warmLoadMs, v => dec(v, 1)), range(c.reference.compactedWarmLoadMs, v => dec(v, 1)), ratio(c.accord.warmLoadMs.median, c.reference.compactedWarmLoadMs.median), '', `replaying all ${int(c.updates)} updates into a doc: ${int(c.accord.replayAllMs)} ms`)
    row('(4) the same in a freshly started process (cold JIT; Accord includes opening LevelDB), ms', range(c.accord.totalMs, v => dec(v, 1)), range(c.reference.compactedLoadMs, v => dec(v, 1)), ratio(c.accord.totalMs.median, c.reference.compactedLoadMs.median), '', '')
    row('(4) first load of the uncompacted log (reference getYDoc replays it all), ms', '- (keyframes: never replays the log)', range(c.reference.firstLoadMs, int), '', '', '')
    row('(4) stock client connects to a freshly started server until it holds the state, ms', range(c.accord.firstSyncMs, v => dec(v, 1)), range(c.reference.firstSyncMs, v => dec(v, 1)), ratio(c.accord.firstSyncMs.median, c.reference.firstSyncMs.median), '', '')
  }
  const hp = r.heap
  if (hp !== undefined) {
    row(`(5) heap per loaded idle workflow (~1 KB JSON, no connection; ${int(hp.idleWorkflows)} loaded)`, kb(hp.accordIdleBytes), '- (unloads without a connection)', '', '', '')
    row('(5) heap per workflow held open by one idle client', kb(hp.connectedBytes.accord ?? Number.NaN), kb(hp.connectedBytes.reference ?? Number.NaN), ratio(hp.connectedBytes.accord, hp.connectedBytes.reference), '', '')
    const ch = (k: string): string => {
      const x = hp.churn[k]
      return x === undefined ? '-' : `${(x.before / 2 ** 20).toFixed(1)} -> ${(x.after / 2 ** 20).toFixed(1)} MB (${x.ratio >= 1 ? '+' : ''}${((x.ratio - 1) * 100).toFixed(1)}%)`
    }
    row(`(5) heap before -> after ${int(hp.openedClosed)} workflows opened and closed`, ch('accord'), ch('reference'), '', '', '')
  }
  const hi = r.history
  if (hi !== undefined) {
    row(`(6) stateAt, ${int(hi.versions)} versions, p50 / p95, ms`, `${dec(hi.stateAtMs.p50)} / ${dec(hi.stateAtMs.p95)}`, '- (no history)', '', '', '')
    row('(6) history page of 100, newest / random position, p50, ms', `${dec(hi.historyHeadPage100Ms.p50)} / ${dec(hi.historyPage100Ms.p50)}`, '- (no history)', '', '', '')
  }
  return rows
}

const ladderTable = (title: string, ladders: Record<string, Ladder[]>): string => {
  const lines = [`**${title}** (first run; p50/p99 in ms; cores = CPU used in the window)`, '', '| server | offered/s | sent/s | persisted/s | p50 | p99 | delivered | server cores | load cores | |', '|---|---|---|---|---|---|---|---|---|---|']
  for (const [kind, ls] of Object.entries(ladders)) {
    for (const s of ls[0]?.steps ?? []) {
      lines.push(`| ${kind} | ${int(s.rate)} | ${int(s.sentRate)} | ${int(s.persistedRate)} | ${dec(s.latency.p50)} | ${dec(s.latency.p99)} | ${(s.delivered * 100).toFixed(1)}% | ${dec(s.serverCores)} | ${dec(s.loadCores)} | ${[s.saturated ? 'saturated' : '', s.loadBound ? 'load-bound' : ''].filter(Boolean).join(', ')} |`)
    }
  }
  return lines.join('\n')
}

/** Every run's latency step at half of Accord's saturation, with the CPU each side used. */
const halfRateTable = (s: SaturationResult): string => {
  const lines = [`**(1) latency at ${int(s.halfRate)}/s, every run** (ms; cores = CPU used in the window; lag = the load generator's own lag behind its schedule, p99)`, '', '| server | run | p50 | p99 | server cores | load cores | lag p99 |', '|---|---|---|---|---|---|---|']
  const all: Array<[string, StepOutcome[]]> = [...Object.entries(s.halfLatency).map(([k, h]): [string, StepOutcome[]] => [k, h.steps]), ['bare relay', s.bareRelay?.steps ?? []]]
  for (const [kind, steps] of all) {
    steps.forEach((x, i) => { lines.push(`| ${kind} | ${i + 1} | ${dec(x.latency.p50)} | ${dec(x.latency.p99)} | ${dec(x.serverCores)} | ${dec(x.loadCores)} | ${dec(x.lagP99, 1)} |`) })
  }
  return lines.join('\n')
}

/** The table and verdicts (what docs/benchmarks.md shows). */
export const summaryMarkdown = (r: BenchResults): string => {
  const busy = Object.entries(r.busy).map(([k, b]) => `${k} ${b.otherCores.toFixed(2)}`).join(', ')
  const commits = Array.from(new Set(Object.values(r.commits ?? {})))
  return [
    `Machine: ${describeMachine(r.machine)}. Run ${r.date} (${r.mode}${r.rerun === undefined ? `, ${Math.round(r.durationSec)} s` : `; ${r.rerun.join(', ')} re-run with --only`}); medians over runs, (min-max) when several.`,
    `Other processes' CPU during each scenario, in cores: ${busy === '' ? '-' : busy}.`,
    ...(new Set(Object.values(r.machines ?? {})).size > 1 ? [`Scenarios ran on different machines: ${Object.entries(r.machines ?? {}).map(([k, m]) => `${k} on ${m}`).join('; ')}.`] : []),
    ...(commits.length > 1 ? [`Scenarios ran at different Accord commits: ${Object.entries(r.commits).map(([k, c]) => `${k} ${c}`).join(', ')}.`] : []),
    '',
    '| measure | Accord | reference (y-websocket@2 + y-leveldb) | Accord / reference | Accord without persistence | machine limit |',
    '|---|---|---|---|---|---|',
    ...summaryRows(r),
    '',
    '| target | wanted | measured | |',
    '|---|---|---|---|',
    ...r.targets.map(t => `| ${t.name} | ${t.target} | ${t.value} | ${verdict(t.pass)} |`)
  ].join('\n')
}

export const fullMarkdown = (r: BenchResults): string => {
  const parts = [`# Accord benchmark (${r.date})`, '', summaryMarkdown(r), '']
  if (r.saturation !== undefined && (r.saturation.errors ?? []).length > 0) parts.push(`Failures in (1): ${r.saturation.errors.join('; ')}`, '')
  if (r.saturation !== undefined) parts.push(ladderTable(`(1) ${r.saturation.workflows} workflows x ${r.saturation.agents} agents, stepped rates`, r.saturation.ladders), '', halfRateTable(r.saturation), '')
  if (r.hot !== undefined) parts.push(ladderTable(`(3) one workflow x ${r.hot.agents} agents, stepped rates`, r.hot.ladders), '')
  if (r.cold !== undefined) {
    parts.push(`(4) Accord wrote ${int(r.cold.updates)} versions through the store API in ${int(r.cold.accord.writeMs)} ms, compaction (archiving ${r.cold.accord.chunks} keyframe intervals) took ${int(r.cold.accord.compactMs)} ms; open ${range(r.cold.accord.openMs, v => dec(v, 1))} ms + load ${range(r.cold.accord.loadMs, v => dec(v, 1))} ms. y-leveldb wrote them in ${int(r.cold.reference.writeMs)} ms.`, '')
  }
  if (r.limits !== undefined) {
    parts.push(`Limits: LevelDB (level 10) ${r.limits.level.map(l => `${int(l.putsPerSecond)} puts/s in batches of ${l.batch}`).join(', ')} (values ${dec(r.limits.level[0]?.valueBytes ?? Number.NaN, 0)} bytes); ws echo of ${r.limits.echo.bytes} bytes p50 ${dec(r.limits.echo.roundTrip.p50, 0)} us, p99 ${dec(r.limits.echo.roundTrip.p99, 0)} us.`, '')
  }
  if (r.bundle !== undefined) parts.push(bundleMarkdown(r.bundle), '')
  if (r.inspector !== undefined) parts.push(`**(10) ${formatInspector(r.inspector)}**`, '')
  parts.push('How it is measured: `bench/run.ts` (see the comments at the top of each `bench/*.ts`). Raw numbers: `bench.json`.', '')
  return parts.join('\n')
}

/** (8) The browser bundle: sizes, the baseline, the budget, bytes per package. */
export const bundleMarkdown = (b: BundleResult): string => {
  const names = Array.from(new Set([...Object.keys(b.sdk.packages), ...Object.keys(b.openWorkflow.packages), ...Object.keys(b.baseline.packages)]))
  const rows: Array<[string, BundleResult['sdk'], number | null]> = [
    ['`import { openWorkflow }` (handles with history and runtime APIs)', b.openWorkflow, b.marginGzip.openWorkflow],
    ['every export of the entry (adds the zod/mini schemas)', b.sdk, b.marginGzip.sdk],
    ['Yjs + y-websocket alone (`export *` of both): the baseline', b.baseline, null]
  ]
  return [
    `**(8) browser bundle** (\`${b.entry}\` through esbuild: minified, browser platform, ESM; gzip level 9). Budget: baseline + ${kb(b.budgetGzip)} gzip.`, '',
    '| bundle | minified | gzip | over the baseline, gzip | budget |', '|---|---|---|---|---|',
    ...rows.map(([name, s, margin]) => `| ${name} | ${kb(s.minified)} | ${kb(s.gzip)} | ${margin === null ? '' : kb(s.gzip - b.baseline.gzip)} | ${margin === null ? '' : `${verdict(margin >= 0)} (${kb(Math.abs(margin))} ${margin >= 0 ? 'left' : 'over'})`} |`),
    '', 'Minified bytes per package (`accord`: our own code):', '',
    '| package | openWorkflow | every export | baseline |', '|---|---|---|---|',
    ...names.map(n => `| ${n} | ${kb(b.openWorkflow.packages[n] ?? 0)} | ${kb(b.sdk.packages[n] ?? 0)} | ${kb(b.baseline.packages[n] ?? 0)} |`)
  ].join('\n')
}

/** Replaces the bench section of docs/benchmarks.md (between the markers) with the summary. */
export const updateBenchmarkDoc = async (docPath: string, r: BenchResults): Promise<boolean> => {
  const text = await readFile(docPath, 'utf8')
  const start = '<!-- bench:start -->'
  const end = '<!-- bench:end -->'
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i) return false
  await writeFile(docPath, text.slice(0, i + start.length) + '\n' + summaryMarkdown(r) + '\n' + text.slice(j))
  return true
}
