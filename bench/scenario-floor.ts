/**
 * Scenario 14 (own flag: `npm run bench -- --only floor`): latency near the physical floor, the
 * low-rate targets of issue #20, each from figures measured side by side in one run:
 *
 *   at 10% of saturation: Accord p99 <= bare relay p99 + the store's own commit p99 + 1 ms
 *   at 50% of saturation: Accord p99 <= 2 x Accord without persistence (--store memory) p99
 *
 * Saturation is Accord's (LevelDB) own, found by a ladder at the start of each run. The load
 * generator is pinned to core 1 and every server to core 0 (taskset). The store's commit p99 is
 * LevelDB alone, in this process, while no server runs: one db.batch per version (its log
 * entry, version record and meta, Accord's key shapes and typical sizes), paced at the same rate.
 * Latency: submit to receipt by every other agent of the workflow (20 workflows x 5 stock
 * y-websocket agents). Results: bench/results/floor.{json,md}.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Level } from 'level'
import { freshDir, ids, withLoad, type Context } from './context.ts'
import { fmtSpread, writeOwnTable } from './own-table.ts'
import { pinToCore } from './pin.ts'
import { startRelay, startServer, type BenchServer } from './servers.ts'
import { latency, sleep, spread, type Spread } from './stats.ts'
import { ladder, measureStep, settle, type Load } from './steps.ts'
import { typicalUpdates } from './workload.ts'

type Variant = 'accord' | 'accord-memory' | 'relay'

export interface FloorResult {
  saturation: Spread
  /** Runs whose ladder ended on the load generator's ceiling (Accord's saturation is then at least that). */
  loadBoundRuns: number
  /** Per share of saturation (0.1, 0.5): the offered rate and every variant's p99, plus the commit p99. */
  at: Array<{ share: number, rate: Spread, p99: Record<Variant, Spread>, p50: Record<Variant, Spread>, commitP99: Spread }>
  targets: Array<{ name: string, value: number, limit: number, pass: boolean }>
  pinned: boolean
}

const WORKFLOWS = 20
const AGENTS = 5

/** p99 of one LevelDB batch per version, paced at `rate` versions/s for `ms`. */
const commitLatency = async (rate: number, ms: number): Promise<number> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'accord-bench-commit-'))
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  const updates = typicalUpdates(200)
  const record = new Uint8Array(400).fill(7)
  const meta = new Uint8Array(200).fill(9)
  const took: number[] = []
  try {
    const started = performance.now()
    for (let n = 0; performance.now() - started < ms; n++) {
      const due = started + n * 1000 / rate
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      const id = `bench-${n % WORKFLOWS}`
      const v = n.toString(16).padStart(16, '0')
      const t0 = performance.now()
      await db.batch([
        { type: 'put', key: `w!${id}!log!${v}`, value: updates[n % updates.length] as Uint8Array },
        { type: 'put', key: `w!${id}!ver!${v}`, value: record },
        { type: 'put', key: `m!${id}`, value: meta }
      ])
      took.push(performance.now() - t0)
    }
    return latency(took).p99
  } finally {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const start = async (ctx: Context, v: Variant): Promise<BenchServer> =>
  v === 'relay' ? startRelay() : startServer(v, { dataDir: await freshDir(ctx, `floor-${v}`) })

export const runFloor = async (ctx: Context): Promise<FloorResult> => {
  const shares = [0.1, 0.5]
  const timing = { warmupMs: ctx.quick ? 1000 : 1500, durationMs: ctx.quick ? 3000 : 6000 }
  const saturations: number[] = []
  let loadBoundRuns = 0
  const acc = new Map<number, Record<string, number[]>>(shares.map(s => [s, {}]))
  let pinned = false
  await withLoad(async (load: Load) => {
    pinned = await pinToCore(load.child.pid as number, 1)
    const withVariant = async <T>(v: Variant, run: number, fn: (server: BenchServer) => Promise<T>): Promise<T> => {
      const server = await start(ctx, v)
      try {
        await pinToCore(server.pid, 0)
        const c = await load.call<{ unsynced: number }>('connect', { url: server.url, workflows: ids(`floor-${v}-r${run}`, WORKFLOWS), perWorkflow: AGENTS })
        if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync (${v})`)
        return await fn(server)
      } finally {
        await load.call('disconnect').catch(() => {})
        await server.stop()
      }
    }
    for (let run = 0; run < ctx.runs; run++) {
      const found = await withVariant('accord', run, server => ladder(server, load, [2000, 4000, 8000, 12000, 16000, 20000, 24000], timing))
      const saturation = found.peak
      saturations.push(saturation)
      if (found.loadBound) loadBoundRuns++
      ctx.log(`    run ${run + 1}: Accord saturates at ${saturation.toFixed(0)} persisted updates/s${found.loadBound ? ' (load-bound)' : ''}`)
      for (const share of shares) {
        const rate = Math.round(saturation * share)
        const into = acc.get(share) as Record<string, number[]>
        const push = (k: string, x: number): void => { (into[k] ??= []).push(x) }
        push('rate', rate)
        // Alternating variants within the run, so a drift of the machine hits them alike.
        for (const v of ['relay', 'accord-memory', 'accord'] as const) {
          const step = await withVariant(v, run, async server => {
            await measureStep(server, load, rate, { warmupMs: 500, durationMs: 1000 })
            await settle(server)
            return measureStep(server, load, rate, timing)
          })
          push(`p99:${v}`, step.latency.p99)
          push(`p50:${v}`, step.latency.p50)
          ctx.log(`    run ${run + 1}, ${(share * 100).toFixed(0)}% (${rate}/s): ${v} p50 ${step.latency.p50.toFixed(2)} ms, p99 ${step.latency.p99.toFixed(2)} ms`)
        }
        const commit = await commitLatency(rate, timing.durationMs)
        push('commit', commit)
        ctx.log(`    run ${run + 1}, ${(share * 100).toFixed(0)}% (${rate}/s): LevelDB commit alone p99 ${commit.toFixed(2)} ms`)
      }
    }
  })
  const at = shares.map(share => {
    const got = acc.get(share) as Record<string, number[]>
    const s = (k: string): Spread => spread(got[k] ?? [])
    const by = (prefix: string): Record<Variant, Spread> => ({ accord: s(`${prefix}:accord`), 'accord-memory': s(`${prefix}:accord-memory`), relay: s(`${prefix}:relay`) })
    return { share, rate: s('rate'), p99: by('p99'), p50: by('p50'), commitP99: s('commit') }
  })
  const [low, half] = at as [FloorResult['at'][number], FloorResult['at'][number]]
  const lowLimit = low.p99.relay.median + low.commitP99.median + 1
  const halfLimit = 2 * half.p99['accord-memory'].median
  const targets = [
    { name: `p99 at 10% of saturation (${low.rate.median.toFixed(0)}/s) <= bare relay p99 + LevelDB commit p99 + 1 ms`, value: low.p99.accord.median, limit: lowLimit, pass: low.p99.accord.median <= lowLimit },
    { name: `p99 at 50% of saturation (${half.rate.median.toFixed(0)}/s) <= 2 x Accord without persistence`, value: half.p99.accord.median, limit: halfLimit, pass: half.p99.accord.median <= halfLimit }
  ]
  const result: FloorResult = { saturation: spread(saturations), loadBoundRuns, at, targets, pinned }
  await writeOwnTable(ctx, 'floor', result, floorMarkdown(result, ctx.runs))
  return result
}

const floorMarkdown = (r: FloorResult, runs: number): string => [
  '# Latency near the floor (issue #20)',
  '',
  `${new Date().toISOString()}; LevelDB; 20 workflows x 5 stock y-websocket agents; ${r.pinned ? 'load generator pinned to core 1, every server to core 0' : 'not pinned (no taskset)'}; ` +
    `Accord saturated at ${fmtSpread(r.saturation, 0)} persisted updates/s (a ladder at the start of each run${r.loadBoundRuns > 0 ? `; in ${r.loadBoundRuns} of ${runs} runs the ladder ended on the load generator's ceiling, so Accord's saturation is at least that` : ''}); medians over ${runs} run(s) (min-max). ` +
    'Bare relay: forwards each update to the other agents, no document, no storage (bench/relay-entry.ts). Accord without persistence: `--store memory`. ' +
    'LevelDB commit: one db.batch per version (log entry, version record, meta) paced at the same rate, in the orchestrator while no server runs. Latency: submit to receipt by every other agent.',
  '',
  '| share of saturation | offered/s | bare relay p50 / p99 | Accord, no persistence p50 / p99 | Accord (LevelDB) p50 / p99 | LevelDB commit alone p99 |',
  '|---|---|---|---|---|---|',
  ...r.at.map(x => `| ${(x.share * 100).toFixed(0)}% | ${x.rate.median.toFixed(0)} | ${fmtSpread(x.p50.relay)} / ${fmtSpread(x.p99.relay)} | ${fmtSpread(x.p50['accord-memory'])} / ${fmtSpread(x.p99['accord-memory'])} | ${fmtSpread(x.p50.accord)} / ${fmtSpread(x.p99.accord)} | ${fmtSpread(x.commitP99)} |`),
  '',
  '| target | Accord p99, ms | limit, ms | |',
  '|---|---|---|---|',
  ...r.targets.map(t => `| ${t.name} | ${t.value.toFixed(2)} | ${t.limit.toFixed(2)} | ${t.pass ? 'met' : 'missed'} |`),
  ''
].join('\n')
