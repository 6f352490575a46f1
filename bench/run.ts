/**
 * `npm run bench`: the benchmark harness (issue #8). Every server is its own child process on
 * 127.0.0.1 (Accord through its CLI, Accord with `--store memory`, the reference y-websocket@2
 * server with y-leveldb), driven by real y-websocket clients from a separate load process
 * (bench/load.ts), open loop at fixed rates. Also measures the machine's limits in the same run.
 *
 *   npm run bench                          full run (~10-15 min on 2 cores)
 *   npm run bench -- --quick               smoke run (~2-3 min), writes .scratch/bench-quick.*
 *   npm run bench -- --only saturation,heap    some scenarios (merged into bench.json)
 *   npm run bench -- --profile             Accord servers write CPU profiles (.scratch/profiles)
 *   --wait <s>: wait up to s seconds (300) for other processes to leave the CPU before starting,
 *   and up to 60 s before each scenario; --no-wait skips both. --runs <n> overrides the 3 runs.
 *
 * Scenarios: limits, saturation (1), many (2), hot (3), cold (4), heap (5), history (6), bundle (8,
 * browser bundle sizes, needs `npm run build`, reported in bench.md only), inspector (10, the /ui
 * bundle, bench.md only); cluster (7)
 * runs only when named (--only cluster: PostgreSQL + Redis, 1-3 servers, bench/results/cluster.md),
 * and so does state (9): the SDK's `state` snapshot cost on big workflows (bench/results/state.md),
 * and cluster-many (11): 10,000 workflows over 3 servers, memory and lease churn (bench/results/cluster-many.md),
 * and cluster-cost (12): CPU per persisted update over every process, 1 vs 3 servers, spread vs
 * nginx affinity, LevelDB vs PostgreSQL (bench/results/cluster-cost.md), and workers (13):
 * accord serve --workers 2 vs 1, CPU per persisted update (bench/results/workers.md), and floor (14):
 * latency at 10% and 50% of saturation against the bare relay, the no-persistence path and a
 * LevelDB commit alone (bench/results/floor.md), and cross-server (15): p99 from a write on server A to
 * its receipt on server C vs one server's, at fixed rates (bench/results/cross-server.md), and
 * cluster-idle (16): PostgreSQL transactions and CPU of one cluster server holding 1,000 idle
 * workflows (bench/results/cluster-idle.md).
 * --report-only rewrites bench.md and the docs/benchmarks.md section from bench.json.
 * Writes bench/results/bench.{json,md} and the docs/benchmarks.md section between the bench markers.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { Context } from './context.ts'
import { measureLimits } from './limits.ts'
import { machineInfo, startMeter, waitQuiet, describeHardware, describeMachine } from './machine.ts'
import { formatSummary, summarise } from './profile.ts'
import { diff, formatDiff, totals, type Totals } from './heap-diff.ts'
import { evaluateTargets, fullMarkdown, summaryMarkdown, updateBenchmarkDoc, type BenchResults } from './report.ts'
import { runColdLoad } from './scenario-cold-load.ts'
import { runHeap } from './scenario-heap.ts'
import { runHistory } from './scenario-history.ts'
import { runHot } from './scenario-hot.ts'
import { runMany } from './scenario-many.ts'
import { runSaturation } from './scenario-saturation.ts'
import { runCluster } from './scenario-cluster.ts'
import { runClusterMany } from './scenario-cluster-many.ts'
import { runClusterCost } from './scenario-cluster-cost.ts'
import { runWorkers } from './scenario-workers.ts'
import { runFloor } from './scenario-floor.ts'
import { runCrossServer } from './scenario-cross-server.ts'
import { runClusterIdle } from './scenario-cluster-idle.ts'
import { runBundle } from './scenario-bundle.ts'
import { runInspector } from './scenario-inspector.ts'
import { runState } from './scenario-state.ts'
import { root } from './servers.ts'

type Name = 'limits' | 'saturation' | 'many' | 'hot' | 'cold' | 'heap' | 'history' | 'cluster' | 'bundle' | 'state' | 'inspector' | 'cluster-many' | 'cluster-cost' | 'workers' | 'floor' | 'cross-server' | 'cluster-idle'
const SCENARIOS: Array<{ name: Name, alias: string, run: (ctx: Context) => Promise<unknown> }> = [
  { name: 'limits', alias: '0', run: ctx => measureLimits(ctx.quick) },
  { name: 'saturation', alias: '1', run: runSaturation },
  { name: 'many', alias: '2', run: runMany },
  { name: 'hot', alias: '3', run: runHot },
  { name: 'cold', alias: '4', run: runColdLoad },
  { name: 'heap', alias: '5', run: runHeap },
  { name: 'history', alias: '6', run: runHistory },
  // Needs PostgreSQL and Redis, and has its own table: only with --only cluster.
  { name: 'cluster', alias: '7', run: runCluster },
  // Sizes of the browser bundle (needs dist/): bench.md only, not the docs/benchmarks.md table.
  { name: 'bundle', alias: '8', run: runBundle },
  // The inspector's bundle (/ui): bench.md only, like the SDK's.
  { name: 'inspector', alias: '10', run: async () => runInspector() },
  // In-process cost of the SDK's `state` snapshot; its own table: only with --only state.
  { name: 'state', alias: '9', run: runState },
  // 10,000 workflows over 3 servers (PostgreSQL + Redis): memory, eviction, lease churn; own table.
  { name: 'cluster-many', alias: '11', run: runClusterMany },
  // CPU per persisted update over every process (PostgreSQL + Redis + nginx); own table.
  { name: 'cluster-cost', alias: '12', run: runClusterCost },
  // accord serve --workers 2 vs 1: CPU per persisted update over every process; own table.
  { name: 'workers', alias: '13', run: runWorkers },
  // Latency near the floor: Accord vs the bare relay and its own no-persistence path at 10% and 50% of saturation; own table.
  { name: 'floor', alias: '14', run: runFloor },
  // Cross-server latency: a write on server A to its receipt on server C vs one server; own table.
  { name: 'cross-server', alias: '15', run: runCrossServer },
  // Idle cost of loaded workflows in cluster mode (reconcile): PostgreSQL transactions and CPU; own table.
  { name: 'cluster-idle', alias: '16', run: runClusterIdle }
]
const ONLY_WHEN_NAMED: Name[] = ['cluster', 'state', 'cluster-many', 'cluster-cost', 'workers', 'floor', 'cross-server', 'cluster-idle']

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-wait': { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
    wait: { type: 'string' }
  }
})

const quick = values.quick === true
const wanted = values.only?.split(',').map(s => s.trim()).filter(Boolean)
const unknown = wanted?.filter(w => !SCENARIOS.some(s => s.name === w || s.alias === w)) ?? []
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario ${unknown.join(', ')}; choose from ${SCENARIOS.map(s => `${s.name} (${s.alias})`).join(', ')}\n`)
  process.exit(2)
}
const selected = SCENARIOS.filter(s => wanted === undefined ? !ONLY_WHEN_NAMED.includes(s.name) : wanted.includes(s.name) || wanted.includes(s.alias))

const log = (line: string): void => { process.stderr.write(line + '\n') }
const resultsDir = path.join(root, 'bench/results')

// Rewrites bench.md and the docs/benchmarks.md section from bench.json, measuring nothing.
if (values['report-only'] === true) {
  const saved = JSON.parse(await readFile(path.join(resultsDir, 'bench.json'), 'utf8')) as BenchResults
  saved.targets = evaluateTargets(saved)
  await writeFile(path.join(resultsDir, 'bench.json'), JSON.stringify(saved, null, 2) + '\n')
  await writeFile(path.join(resultsDir, 'bench.md'), fullMarkdown(saved))
  await updateBenchmarkDoc(path.join(root, 'docs/benchmarks.md'), saved)
  process.stdout.write(summaryMarkdown(saved) + '\n')
  process.exit(0)
}
const profileDir = values.profile === true ? path.join(root, '.scratch/profiles') : undefined
const tmp = await mkdtemp(path.join(os.tmpdir(), 'accord-bench-'))
const ctx: Context = { quick, runs: values.runs !== undefined ? Math.max(1, Number(values.runs)) : quick ? 1 : 3, tmp, profileDir, log }
if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })

const machine = machineInfo()
log(`Accord benchmark (${quick ? 'quick' : 'full'}, ${ctx.runs} run(s)) on ${describeMachine(machine)}`)
if (values['no-wait'] !== true) {
  const busy = await waitQuiet(0.3, Number(values.wait ?? 300) * 1000)
  if (busy > 0.3) log(`  the machine stays busy (${busy.toFixed(2)} cores used by others): results will be noisy`)
}

const started = performance.now()
const machines: Record<string, string> = {}
const results: BenchResults = { date: new Date().toISOString(), mode: quick ? 'quick' : 'full', durationSec: 0, machine, busy: {}, commits: {}, machines, targets: [] }
const errors: Record<string, string> = {}
try {
  for (const scenario of selected) {
    log(`${scenario.name} (${scenario.alias})`)
    // Other processes skew every figure on a small machine: give them a moment to finish.
    if (values['no-wait'] !== true) await waitQuiet(0.3, 60_000)
    results.commits[scenario.name] = machineInfo().commit
    machines[scenario.name] = describeHardware(machine)
    const meter = await startMeter()
    const t0 = performance.now()
    try {
      (results as unknown as Record<string, unknown>)[scenario.name] = await scenario.run(ctx)
    } catch (err) {
      errors[scenario.name] = (err as Error).stack ?? String(err)
      log(`  FAILED: ${(err as Error).message}`)
    }
    results.busy[scenario.name] = await meter.stop()
    log(`  ${((performance.now() - t0) / 1000).toFixed(0)} s; other processes used ${results.busy[scenario.name]?.otherCores.toFixed(2)} cores`)
  }
} finally {
  await rm(tmp, { recursive: true, force: true })
}
results.durationSec = (performance.now() - started) / 1000

// `state`, `cluster-many` and `cluster-cost` write only their own tables (bench/results/<name>.md):
// a run of them alone leaves bench.json, bench.md and the README's figures as they were.
if (selected.every(s => ONLY_WHEN_NAMED.includes(s.name) && s.name !== 'cluster')) {
  if (Object.keys(errors).length > 0) {
    for (const [name, e] of Object.entries(errors)) log(`${name} failed: ${e}`)
    process.exit(1)
  }
  log(`wrote ${selected.map(s => path.join(quick ? '.scratch' : 'bench/results', `${s.name}.md`)).join(', ')}`)
  process.exit(0)
}

// A partial full run updates its scenarios in the last full results; a quick run stands alone,
// in .scratch/ (git-ignored), so it never replaces the published results.
const base = quick ? 'bench-quick' : 'bench'
const outDir = quick ? path.join(root, '.scratch') : resultsDir
let merged: BenchResults = results
if (!quick && wanted !== undefined) {
  const previous = await readFile(path.join(resultsDir, 'bench.json'), 'utf8').then(t => JSON.parse(t) as BenchResults, () => null)
  if (previous !== null) {
    merged = {
      ...previous,
      ...Object.fromEntries(Object.entries(results).filter(([k]) => selected.some(s => s.name === k))),
      busy: { ...previous.busy, ...results.busy },
      commits: { ...previous.commits, ...results.commits },
      // Results from before machines were recorded per scenario ran on the previous run's machine.
      machines: { ...previous.machines ?? Object.fromEntries(Object.keys(previous.commits).map(k => [k, describeHardware(previous.machine)])), ...machines },
      date: results.date,
      durationSec: results.durationSec,
      rerun: Array.from(new Set([...(previous.rerun ?? []), ...selected.map(s => s.name)])),
      machine
    }
  }
}
merged.targets = evaluateTargets(merged)
await mkdir(outDir, { recursive: true })
await writeFile(path.join(outDir, `${base}.json`), JSON.stringify({ ...merged, errors: Object.keys(errors).length > 0 ? errors : undefined }, null, 2) + '\n')
await writeFile(path.join(outDir, `${base}.md`), fullMarkdown(merged))
// Bundle sizes alone change nothing the docs/benchmarks.md table shows.
const docShown = selected.some(s => s.name !== 'bundle' && s.name !== 'inspector')
if (!quick && docShown && await updateBenchmarkDoc(path.join(root, 'docs/benchmarks.md'), merged)) log('docs/benchmarks.md benchmark section updated')
process.stdout.write(summaryMarkdown(merged) + '\n')

if (profileDir !== undefined) {
  // One directory per server; the main thread's profile is CPU.<date>.<pid>.0.<seq>.cpuprofile.
  for (const entry of await readdir(profileDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const dir = path.join(profileDir, entry.name)
    const main = (await readdir(dir)).find(f => /^CPU\.[^.]+\.[^.]+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
    if (main === undefined) continue
    const summary = formatSummary(summarise(JSON.parse(await readFile(path.join(dir, main), 'utf8')), 30))
    await writeFile(path.join(profileDir, `${entry.name}.txt`), summary)
  }
  const snapshots = ['before', 'after'].map(w => path.join(profileDir, `heap-idle-${w}.heapsnapshot`))
  if (results.heap !== undefined && (await readdir(profileDir)).includes('heap-idle-after.heapsnapshot')) {
    const [a, b] = await Promise.all(snapshots.map(async f => totals(JSON.parse(await readFile(f, 'utf8')))))
    const per = results.heap.idleWorkflows - 1
    await writeFile(path.join(profileDir, 'heap-idle.txt'), `heap added per loaded idle workflow (self sizes, ${per} workflows):\n` + formatDiff(diff(a as Totals, b as Totals, per, 40)))
  }
  log(`CPU profiles, heap snapshots and their summaries: ${profileDir}`)
}
if (Object.keys(errors).length > 0) {
  for (const [name, e] of Object.entries(errors)) log(`${name} failed: ${e}`)
  process.exitCode = 1
}
