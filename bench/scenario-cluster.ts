/**
 * Scenario 7 (own flag: `npm run bench -- --only cluster`): Accord on PostgreSQL + Redis with 1, 2
 * and 3 servers, each `accord serve --store postgres://... --bus redis://...` as its own child
 * process, behind one TCP balancer that spreads the agents of every workflow over the servers
 * (so most receipts cross servers through the bus). 20 workflows x 5 agents, rates stepped until
 * saturation; persisted updates/s are summed from every server's store-side counter; latency at a
 * fixed rate. Needs PostgreSQL and Redis (ACCORD_TEST_POSTGRES_URL, ACCORD_TEST_REDIS_URL).
 * Results: bench/results/cluster.{json,md} (the cluster is its own table).
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ids, withLoad, type Context } from './context.ts'
import { root, startServer, type BenchServer } from './servers.ts'
import { spread, type Spread } from './stats.ts'
import { ladder, measureStep, settle } from './steps.ts'
import { startBalancer } from '../test/helpers/balancer.ts'
import { POSTGRES_URL, REDIS_URL, dropServiceData, servicesMissing } from '../test/helpers/services.ts'

export interface ClusterResult {
  servers: Array<{ n: number, saturation: Spread, loadBound: boolean, p50: Spread, p99: Spread, latencyRate: number }>
  skipped?: string
}

export const runCluster = async (ctx: Context): Promise<ClusterResult> => {
  const missing = await servicesMissing()
  if (missing !== null) {
    ctx.log(`  cluster skipped: ${missing}`)
    return { servers: [], skipped: missing }
  }
  const timing = ctx.quick ? { warmupMs: 500, durationMs: 1500 } : { warmupMs: 750, durationMs: 2250 }
  const rates: number[] = []
  for (let r = 500; r <= 40_000; r *= ctx.quick ? 2 : 1.5) rates.push(Math.round(r))
  const latencyRate = 1000
  const result: ClusterResult = { servers: [] }
  await withLoad(async load => {
    for (const n of [1, 2, 3]) {
      const peaks: number[] = []
      const p50: number[] = []
      const p99: number[] = []
      let loadBound = false
      for (let run = 0; run < ctx.runs; run++) {
        const schema = `accord_bench_${randomBytes(4).toString('hex')}`
        const args = ['--store', `${POSTGRES_URL}?schema=${schema}`, '--bus', REDIS_URL, '--bus-prefix', `${schema}:`]
        const servers: BenchServer[] = []
        for (let i = 0; i < n; i++) { // one at a time: the first migrates
          servers.push(await startServer('accord', { dataDir: ctx.tmp, serveArgs: args, profileDir: ctx.profileDir, profileName: `cluster-${n}-${run}-${i}` }))
        }
        const balancer = await startBalancer(() => servers.map(s => Number(new URL(s.url).port)), { random: run + 1 })
        const sum = async (f: (s: BenchServer) => Promise<number>): Promise<number> => (await Promise.all(servers.map(f))).reduce((a, b) => a + b, 0)
        const server: BenchServer = {
          kind: 'accord',
          url: balancer.url,
          pid: servers[0]!.pid,
          persisted: () => sum(s => s.persisted()),
          cpu: () => sum(s => s.cpu()),
          stop: async () => {}
        }
        try {
          const c = await load.call<{ unsynced: number }>('connect', { url: server.url, workflows: ids(`cl${n}r${run}`, 20), perWorkflow: 5 })
          if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync with ${n} servers`)
          const l = await ladder(server, load, rates, timing)
          peaks.push(l.peak)
          loadBound ||= l.loadBound
          await settle(server)
          const s = await measureStep(server, load, latencyRate, { warmupMs: timing.warmupMs, durationMs: ctx.quick ? 2000 : 4000 })
          p50.push(s.latency.p50)
          p99.push(s.latency.p99)
          ctx.log(`    ${n} server(s): peak ${Math.round(l.peak)} persisted/s; at ${latencyRate}/s p50 ${s.latency.p50.toFixed(2)} ms, p99 ${s.latency.p99.toFixed(2)} ms`)
        } finally {
          await load.call('disconnect').catch(() => {})
          await balancer.close()
          await Promise.all(servers.map(s => s.stop()))
          await dropServiceData({ schema, redisPrefix: `${schema}:` })
        }
      }
      result.servers.push({ n, saturation: spread(peaks), loadBound, p50: spread(p50), p99: spread(p99), latencyRate })
    }
  })
  const fmt = (s: Spread, digits = 0): string => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`
  const md = [
    '# Accord cluster benchmark (PostgreSQL store + Redis bus)',
    '',
    `${new Date().toISOString()}; 20 workflows x 5 agents spread over the servers by a TCP balancer; medians over ${ctx.runs} run(s) (min-max).`,
    '',
    '| servers | saturated persisted updates/s | p50 / p99 at ' + `${latencyRate}/s, ms |`,
    '|---|---|---|',
    ...result.servers.map(r => `| ${r.n} | ${fmt(r.saturation)}${r.loadBound ? ' (load-bound: at least)' : ''} | ${fmt(r.p50, 2)} / ${fmt(r.p99, 2)} |`),
    ''
  ].join('\n')
  const dir = ctx.quick ? path.join(root, '.scratch') : path.join(root, 'bench/results')
  await writeFile(path.join(dir, 'cluster.md'), md)
  await writeFile(path.join(dir, 'cluster.json'), JSON.stringify(result, null, 2) + '\n')
  ctx.log(md)
  return result
}
