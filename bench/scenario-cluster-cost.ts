/**
 * Scenario 12 (own flag: `npm run bench -- --only cluster-cost`): what one persisted update costs
 * summed over every process that touches it, and how that grows with servers (issue #20). One
 * fixed offered rate, the same for every setup, from the load process pinned to its own core:
 *
 *   level-1        one server on LevelDB (no bus)
 *   pg-1           one server on PostgreSQL + Redis (cluster mode, the baseline of the ratios)
 *   pg-2-spread    two servers, each connection to one picked at random (seeded per run)
 *   pg-3-spread    three servers, connections spread at random (most writes are forwarded)
 *   pg-3-affinity  three servers behind nginx with the shipped config (hash by workflow id)
 *
 * CPU is read from /proc over the measurement window for every Accord server, every PostgreSQL
 * process, Redis and (affinity) nginx; the in-process TCP balancer of the spread setups runs in this
 * harness and is not counted. Bytes: PostgreSQL WAL and Redis network input over the window, per
 * persisted update. Latency: submit to receipt by every other agent of the workflow (with the
 * connections spread, most receipts are on another server: the cross-server figure).
 * Results: bench/results/cluster-cost.{json,md}. BENCH_COST_SETUPS=pg-1,pg-3-affinity runs only those
 * setups (a quick check; the results files then hold only them).
 */
import { randomBytes } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import path from 'node:path'
import Redis from 'ioredis'
import pg from 'pg'
import { fmtSpread, writeOwnTable } from './own-table.ts'
import { summarise, type Summary } from './profile.ts'
import { STAGES, stageTimes, type Stage } from './stages.ts'
import { pinToCore } from './pin.ts'
import { freshDir, ids, withLoad, type Context } from './context.ts'
import { metricSum, startServer, type BenchServer } from './servers.ts'
import { cpuByComm, spread, used, type Spread } from './stats.ts'
import { measureStep, settle, type Load } from './steps.ts'
import { startBalancer } from '../test/helpers/balancer.ts'
import { nginxMissing, startNginx } from '../test/helpers/nginx.ts'
import { POSTGRES_URL, REDIS_URL, dropServiceData, servicesMissing } from '../test/helpers/services.ts'

type Setup = 'level-1' | 'pg-1' | 'pg-2-spread' | 'pg-3-spread' | 'pg-3-affinity' | 'pg-1-third'
const SETUPS: Setup[] = ['level-1', 'pg-1', 'pg-2-spread', 'pg-3-spread', 'pg-3-affinity', 'pg-1-third']
/**
 * The control for three servers: one server given what each of three gets with affinity, a third
 * of the workflows at a third of the rate. Three servers cost more per update than one at the
 * full rate partly because each runs at a third of it (fewer updates per event-loop turn, version
 * and wake-up); this row measures that part without a second server.
 */
const SHARE: Partial<Record<Setup, number>> = { 'pg-1-third': 3 }
const PROFILED: Setup[] = ['pg-1', 'pg-3-spread', 'pg-3-affinity']
const PROFILE_RATE = 500

export interface CostRow {
  setup: Setup
  servers: number
  /** The step's offered updates/s (the row's group: a share setup is offered a part of it). */
  rate: number
  /** What this setup was offered, updates/s. */
  offered: number
  /** CPU seconds per 1,000 persisted updates: Accord servers, PostgreSQL, Redis, nginx, and their sum. */
  cpuPer1000: { accord: Spread, postgres: Spread, redis: Spread, nginx: Spread, total: Spread }
  /** Share of persisted updates that arrived at a server that is not their workflow's writer. */
  forwardedShare: Spread
  walBytesPerUpdate: Spread
  redisBytesPerUpdate: Spread
  persistedRate: Spread
  p50: Spread
  p99: Spread
}

export interface ClusterCostResult { rates: number[], workflows: number, agentsPerWorkflow: number, rows: CostRow[], pinned: boolean, skipped?: string }


interface Sample { accord: number, postgres: Map<number, number>, redis: Map<number, number>, nginx: Map<number, number>, wal: number, redisIn: number, persisted: number, forwarded: number }

export const runClusterCost = async (ctx: Context): Promise<ClusterCostResult> => {
  // A low rate (latency near the floor) and a high one (the 2-core machine nearly busy).
  // Under --profile: one server, three spread and three with affinity, at the low rate (where
  // three servers with affinity cost most over one), for the stage table.
  const profiling = ctx.profileDir !== undefined
  const rates = profiling ? [PROFILE_RATE] : [500, 1500]
  const setups: Setup[] = profiling ? PROFILED : process.env.BENCH_COST_SETUPS !== undefined ? process.env.BENCH_COST_SETUPS.split(',') as Setup[] : SETUPS
  /** Updates persisted over each setup's servers' whole lifetimes (what their profiles cover). */
  const lifetimePersisted = new Map<Setup, number>()
  const workflows = 20
  const agentsPerWorkflow = 5
  const missing = (await servicesMissing()) ?? nginxMissing()
  if (missing !== null) {
    ctx.log(`  cluster-cost skipped: ${missing}`)
    return { rates, workflows, agentsPerWorkflow, rows: [], pinned: false, skipped: missing }
  }
  const db = new pg.Client({ connectionString: POSTGRES_URL })
  await db.connect()
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  const wal = async (): Promise<number> => Number((await db.query<{ b: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS b")).rows[0]?.b ?? 0)
  const redisIn = async (): Promise<number> => Number(/total_net_input_bytes:(\d+)/.exec(await redis.info('stats'))?.[1] ?? 0)
  const timing = { warmupMs: ctx.quick ? 1000 : 1500, durationMs: ctx.quick ? 3000 : 6000 }
  const rows: CostRow[] = []
  let pinned = false
  try {
    await withLoad(async (load: Load) => {
      // The load generator on core 1, the Accord servers on core 0 (PostgreSQL and Redis unpinned).
      pinned = await pinToCore(load.child.pid as number, 1)
      for (const setup of setups) {
        /** Readings by rate, then by measure, one per run. */
        const acc = new Map<number, Record<string, number[]>>(rates.map(r => [r, {}]))
        const n = setup.startsWith('pg-3') ? 3 : setup.startsWith('pg-2') ? 2 : 1
        const share = SHARE[setup] ?? 1
        const setupWorkflows = Math.ceil(workflows / share)
        for (let run = 0; run < ctx.runs; run++) {
          const schema = `accord_bench_${randomBytes(4).toString('hex')}`
          const args = setup === 'level-1' ? [] : ['--store', `${POSTGRES_URL}?schema=${schema}`, '--bus', REDIS_URL, '--bus-prefix', `${schema}:`]
          const servers: BenchServer[] = []
          const stops: Array<() => Promise<void>> = []
          try {
            const dataDir = await freshDir(ctx, `cost-${setup}`)
            for (let i = 0; i < n; i++) servers.push(await startServer('accord', { dataDir, serveArgs: args, profileDir: ctx.profileDir, profileName: `cost-${setup}-r${run}-s${i}` }))
            for (const s of servers) await pinToCore(s.pid, 0)
            const ports = servers.map(s => Number(new URL(s.url).port))
            let url = servers[0]!.url
            if (setup.endsWith('-spread')) {
              const balancer = await startBalancer(() => ports, { random: run + 1 })
              stops.push(() => balancer.close())
              url = balancer.url
            } else if (setup === 'pg-3-affinity') {
              const nginx = await startNginx(ports)
              stops.push(() => nginx.stop())
              url = nginx.url
            }
            const sampleAll = async (): Promise<Sample> => ({
              accord: (await Promise.all(servers.map(s => s.cpu()))).reduce((a, b) => a + b, 0),
              postgres: await cpuByComm('postgres'),
              redis: await cpuByComm('redis-server'),
              nginx: await cpuByComm('nginx'),
              wal: await wal(),
              redisIn: await redisIn(),
              persisted: await metricSum(ports, 'accord_updates_persisted_total'),
              forwarded: await metricSum(ports, 'accord_forwarded_updates_total')
            })
            const composite: BenchServer = {
              kind: 'accord',
              url,
              pid: servers[0]!.pid,
              persisted: () => metricSum(ports, 'accord_updates_persisted_total'),
              cpu: async () => 0,
              stop: async () => {}
            }
            const c = await load.call<{ unsynced: number }>('connect', { url, workflows: ids(`cost-${setup}-r${run}`, setupWorkflows), perWorkflow: agentsPerWorkflow })
            if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync (${setup})`)
            // A warm-up step first: leases taken, pools full, and the JIT warm on every server.
            // At the highest rate and for long enough that each of three servers (a third of the
            // updates each) has run the hot paths about as often as one server would: with a
            // 1.5 s step at 500/s, three servers measured up to 1.7x one server's CPU at 500/s
            // and 1.0x at the next rate, which ran after it.
            await measureStep(composite, load, (rates[rates.length - 1] as number) / share, { warmupMs: 500, durationMs: Number(process.env.BENCH_COST_WARM_MS ?? 4000) })
            await settle(composite)
            for (const rate of rates) {
              const into = acc.get(rate) as Record<string, number[]>
              const push = (k: string, v: number): void => { (into[k] ??= []).push(v) }
              const a = await sampleAll()
              const step = await measureStep(composite, load, rate / share, timing)
              await settle(composite)
              const b = await sampleAll()
              const persisted = b.persisted - a.persisted
              const per1000 = (x: number): number => x / persisted * 1000
              const parts = { accord: b.accord - a.accord, postgres: used(a.postgres, b.postgres), redis: used(a.redis, b.redis), nginx: used(a.nginx, b.nginx) }
              const total = parts.accord + parts.postgres + parts.redis + parts.nginx
              for (const [k, v] of Object.entries(parts)) push(k, per1000(v))
              push('total', per1000(total))
              push('forwarded', (b.forwarded - a.forwarded) / persisted)
              push('wal', setup === 'level-1' ? 0 : (b.wal - a.wal) / persisted)
              push('redisBytes', setup === 'level-1' ? 0 : (b.redisIn - a.redisIn) / persisted)
              push('rate', step.persistedRate)
              push('p50', step.latency.p50)
              push('p99', step.latency.p99)
              ctx.log(`    ${setup} at ${rate}/s, run ${run + 1}: ${per1000(total).toFixed(2)} CPU s / 1,000 updates (accord ${per1000(parts.accord).toFixed(2)}, postgres ${per1000(parts.postgres).toFixed(2)}, redis ${per1000(parts.redis).toFixed(2)}, nginx ${per1000(parts.nginx).toFixed(2)}); forwarded ${((b.forwarded - a.forwarded) / persisted * 100).toFixed(0)}%; p50 ${step.latency.p50.toFixed(2)} ms, p99 ${step.latency.p99.toFixed(2)} ms`)
            }
            lifetimePersisted.set(setup, (lifetimePersisted.get(setup) ?? 0) + await metricSum(ports, 'accord_updates_persisted_total'))
          } finally {
            await load.call('disconnect').catch(() => {})
            for (const stop of stops) await stop()
            await Promise.all(servers.map(s => s.stop()))
            if (setup !== 'level-1') await dropServiceData({ schema, redisPrefix: `${schema}:` })
          }
        }
        for (const rate of rates) {
          const got = acc.get(rate) as Record<string, number[]>
          const s = (k: string): Spread => spread(got[k] ?? [])
          rows.push({
            setup,
            servers: n,
            rate,
            offered: Math.round(rate / (SHARE[setup] ?? 1)),
            cpuPer1000: { accord: s('accord'), postgres: s('postgres'), redis: s('redis'), nginx: s('nginx'), total: s('total') },
            forwardedShare: s('forwarded'),
            walBytesPerUpdate: s('wal'),
            redisBytesPerUpdate: s('redisBytes'),
            persistedRate: s('rate'),
            p50: s('p50'),
            p99: s('p99')
          })
        }
      }
    })
  } finally {
    await db.end()
    redis.disconnect()
  }
  const result: ClusterCostResult = { rates, workflows, agentsPerWorkflow, rows, pinned }
  if (!profiling) {
    await writeOwnTable(ctx, 'cluster-cost', result, costMarkdown(result, ctx.runs))
    return result
  }
  // Profiled timings are not the published ones: the cost table of this run goes to .scratch.
  await writeOwnTable({ ...ctx, quick: true }, 'cluster-cost-profiled', result, costMarkdown(result, ctx.runs))
  const stages = await stageReport(ctx.profileDir as string, setups, lifetimePersisted)
  await writeOwnTable(ctx, 'forward-profile', stages, stageMarkdown(stages, result))
  return result
}

/** The stage table from every server's main-thread profile of each setup (see stages.ts). */
interface StageReport { rows: Array<{ stage: Stage, msPerUpdate: Record<string, number> }>, persisted: Record<string, number> }

const stageReport = async (profileDir: string, setups: Setup[], persisted: Map<Setup, number>): Promise<StageReport> => {
  const bySetup = new Map<Setup, Map<Stage, number>>()
  for (const setup of setups) {
    const summaries: Summary[] = []
    for (const entry of await readdir(profileDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !entry.name.startsWith(`cost-${setup}-r`)) continue
      const dir = path.join(profileDir, entry.name)
      const main = (await readdir(dir)).find(f => /^CPU\.[^.]+\.[^.]+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
      if (main !== undefined) summaries.push(summarise(JSON.parse(await readFile(path.join(dir, main), 'utf8')), 100_000))
    }
    bySetup.set(setup, stageTimes(summaries))
  }
  const rows = STAGES.map(stage => ({
    stage,
    msPerUpdate: Object.fromEntries(setups.map(setup => [setup, (bySetup.get(setup)?.get(stage) ?? 0) / (persisted.get(setup) ?? 1)]))
  }))
  return { rows, persisted: Object.fromEntries(persisted) }
}

const stageMarkdown = (r: StageReport, cost: ClusterCostResult): string => {
  const forwarded = cost.rows.find(x => x.setup === 'pg-3-spread')?.forwardedShare.median ?? Number.NaN
  const ms = (x: number): string => (x * 1000).toFixed(1)
  const total = (setup: string): number => r.rows.reduce((a, x) => a + (x.msPerUpdate[setup] ?? 0), 0)
  return [
    '# Where the time goes: one server vs three, spread and with affinity, by stage (issue #20)',
    '',
    `${new Date().toISOString()}; \`npm run bench -- --only cluster-cost --profile\`: PostgreSQL + Redis, 20 workflows x 5 stock y-websocket agents at ${PROFILE_RATE.toLocaleString('en-US')} updates/s; ` +
      `V8 CPU profiles of every Accord server's main thread over its whole life (start-up included), self time by file grouped into stages (bench/stages.ts), ` +
      `divided by the updates those servers persisted (${PROFILED.map(x => `${x}: ${r.persisted[x] ?? 0}`).join(', ')}). ` +
      `In pg-3-spread ${(forwarded * 100).toFixed(0)}% of updates reached a server that is not their writer. PostgreSQL's and Redis's own CPU is not in this table (see cluster-cost.md). ` +
      'A sample is main-thread time in a frame, not CPU: it includes time the thread was runnable but waiting for core 0, which the servers share (with PostgreSQL unpinned), and profiling slows the servers. ' +
      'Compare the columns with each other, not with the CPU figures of the unprofiled tables.',
    '',
    '| stage | pg-1, µs per update | pg-3-spread | added by 3 spread | pg-3-affinity | added by 3 with affinity |',
    '|---|---|---|---|---|---|',
    ...r.rows.map(x => {
      const at = (setup: Setup): number => x.msPerUpdate[setup] ?? 0
      return `| ${x.stage} | ${ms(at('pg-1'))} | ${ms(at('pg-3-spread'))} | ${ms(at('pg-3-spread') - at('pg-1'))} | ${ms(at('pg-3-affinity'))} | ${ms(at('pg-3-affinity') - at('pg-1'))} |`
    }),
    `| **all Accord servers** | ${ms(total('pg-1'))} | ${ms(total('pg-3-spread'))} | ${ms(total('pg-3-spread') - total('pg-1'))} | ${ms(total('pg-3-affinity'))} | ${ms(total('pg-3-affinity') - total('pg-1'))} |`,
    ''
  ].join('\n')
}

const costMarkdown = (r: ClusterCostResult, runs: number): string => {
  const fmt = fmtSpread
  const baseline = (rate: number, setup: Setup = 'pg-1'): CostRow | undefined => r.rows.find(x => x.setup === setup && x.rate === rate)
  const line = (x: CostRow): string => {
    const base = baseline(x.rate)
    const ratio = base === undefined ? Number.NaN : x.cpuPer1000.total.median / base.cpuPer1000.total.median
    const third = baseline(x.rate, 'pg-1-third')
    const vsThird = x.servers === 3 && third !== undefined ? `${(x.cpuPer1000.total.median / third.cpuPer1000.total.median).toFixed(2)}x` : '-'
    const dp99 = base === undefined ? Number.NaN : x.p99.median - base.p99.median
    return `| ${x.setup} | ${x.offered} | ${fmt(x.cpuPer1000.total)} | ${fmt(x.cpuPer1000.accord)} | ${fmt(x.cpuPer1000.postgres)} | ${fmt(x.cpuPer1000.redis)} | ${fmt(x.cpuPer1000.nginx)} | ${ratio.toFixed(2)}x | ${vsThird} | ${(x.forwardedShare.median * 100).toFixed(0)}% | ${x.walBytesPerUpdate.median.toFixed(0)} | ${x.redisBytesPerUpdate.median.toFixed(0)} | ${x.persistedRate.median.toFixed(0)} | ${fmt(x.p50)} / ${fmt(x.p99)} (${dp99 >= 0 ? '+' : ''}${dp99.toFixed(2)} vs pg-1) |`
  }
  return [
    '# What one persisted update costs across processes (issue #20)',
    '',
    `${new Date().toISOString()}; ${r.workflows} workflows x ${r.agentsPerWorkflow} stock y-websocket agents, the same offered rates in every setup; ` +
      `load generator ${r.pinned ? 'pinned to core 1, Accord servers to core 0 (PostgreSQL and Redis unpinned)' : 'not pinned (no taskset)'}; medians over ${runs} run(s) (min-max). ` +
      'CPU is summed from /proc over the window for every Accord server, every PostgreSQL process, Redis and nginx; the TCP balancer of the spread setups (a server picked at random per connection) runs in the harness and is not counted. ' +
      'Latency: submit to receipt by every other agent of the workflow (with connections spread, most receipts are on another server). ' +
      `pg-1-third is one server offered what each of three gets with affinity: ${Math.ceil(r.workflows / 3)} workflows at a third of the rate (its offered/s), grouped with the rate it is a third of; "x pg-1-third" compares three servers with it.`,
    '',
    '| setup | offered/s | CPU s per 1,000 persisted updates (total) | Accord | PostgreSQL | Redis | nginx | x pg-1 | x pg-1-third | forwarded | WAL bytes / update | Redis bytes in / update | persisted/s | p50 / p99, ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...r.rows.slice().sort((a, b) => a.rate - b.rate).map(line),
    '',
    '| target | value | limit | |',
    '|---|---|---|---|',
    ...r.rates.flatMap(rate => {
      const total = (setup: Setup): number => baseline(rate, setup)?.cpuPer1000.total.median ?? Number.NaN
      // The issue's two, then the nearest one this machine can measure (docs/scale-out.md).
      return [
        { name: `pg-3-spread at ${rate}/s <= 2x pg-1`, value: total('pg-3-spread') / total('pg-1'), limit: 2 },
        { name: `pg-3-affinity at ${rate}/s <= 1.25x pg-1`, value: total('pg-3-affinity') / total('pg-1'), limit: 1.25 },
        { name: `pg-3-affinity at ${rate}/s <= 1.25x pg-1-third (proposed: one server offered the same share)`, value: total('pg-3-affinity') / total('pg-1-third'), limit: 1.25 }
      ].filter(t => !Number.isNaN(t.value)).map(t => `| ${t.name} | ${t.value.toFixed(2)}x | ${t.limit}x | ${t.value <= t.limit ? 'met' : 'missed'} |`)
    }),
    ''
  ].join('\n')
}
