/**
 * Scenario 16 (own flag: `npm run bench -- --only cluster-idle`): what a server in cluster mode
 * costs while its workflows are loaded but idle (issue #20, many workflows): one server on
 * PostgreSQL + Redis, 1,000 workflows each held open by one stock y-websocket client that writes
 * nothing, over a 10 s window: PostgreSQL transactions per second (pg_stat_database, this
 * database, the harness's own two readings included), the Accord server's CPU and PostgreSQL's.
 * The server reconciles every loaded workflow with the store each second (`--reconcile-ms`), so
 * this is the figure that grows with the workflows a server holds.
 * Results: bench/results/cluster-idle.{json,md}.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { ids, withLoad, type Context } from './context.ts'
import { writeOwnTable } from './own-table.ts'
import { startServer } from './servers.ts'
import { cpuByComm, sleep, used } from './stats.ts'
import { POSTGRES_URL, REDIS_URL, dropServiceData, metricOf, servicesMissing } from '../test/helpers/services.ts'

export interface ClusterIdleResult {
  workflows: number
  loaded: number
  windowSec: number
  reconcileMs: number
  postgresTransactionsPerSec: number
  accordCores: number
  postgresCores: number
  skipped?: string
}

export const runClusterIdle = async (ctx: Context): Promise<ClusterIdleResult | { skipped: string }> => {
  const missing = await servicesMissing()
  if (missing !== null) {
    ctx.log(`  cluster-idle skipped: ${missing}`)
    return { skipped: missing }
  }
  const workflows = ctx.quick ? 200 : 1000
  const windowSec = ctx.quick ? 5 : 10
  const reconcileMs = 1000
  const schema = `accord_bench_${randomBytes(4).toString('hex')}`
  const db = new pg.Client({ connectionString: POSTGRES_URL })
  await db.connect()
  const commits = async (): Promise<number> =>
    Number((await db.query<{ n: string }>('SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]?.n ?? 0)
  const server = await startServer('accord', {
    dataDir: ctx.tmp,
    serveArgs: ['--store', `${POSTGRES_URL}?schema=${schema}`, '--bus', REDIS_URL, '--bus-prefix', `${schema}:`, '--reconcile-ms', String(reconcileMs)]
  })
  try {
    return await withLoad(async load => {
      const c = await load.call<{ unsynced: number }>('connect', { url: server.url, workflows: ids('idle', workflows), perWorkflow: 1 }, 300_000)
      if (c.unsynced > 0) throw new Error(`${c.unsynced} clients did not sync`)
      const base = server.url.replace(/^ws/, 'http')
      // Loading is over once the first reconcile passes ran.
      await sleep(3 * reconcileMs)
      const a = { t: performance.now(), commits: await commits(), accord: await server.cpu(), postgres: await cpuByComm('postgres') }
      await sleep(windowSec * 1000)
      const b = { t: performance.now(), commits: await commits(), accord: await server.cpu(), postgres: await cpuByComm('postgres') }
      const seconds = (b.t - a.t) / 1000
      const result: ClusterIdleResult = {
        workflows,
        loaded: await metricOf(base, 'accord_workflows_loaded'),
        windowSec: seconds,
        reconcileMs,
        postgresTransactionsPerSec: (b.commits - a.commits) / seconds,
        accordCores: (b.accord - a.accord) / seconds,
        postgresCores: used(a.postgres, b.postgres) / seconds
      }
      await writeOwnTable(ctx, 'cluster-idle', result, idleMarkdown(result))
      return result
    })
  } finally {
    await server.stop()
    await db.end()
    await dropServiceData({ schema, redisPrefix: `${schema}:` })
  }
}

const idleMarkdown = (r: ClusterIdleResult): string => [
  '# Idle cost of loaded workflows in cluster mode (issue #20)',
  '',
  `${new Date().toISOString()}; one server on PostgreSQL + Redis, ${r.workflows} workflows each held open by one stock y-websocket client writing nothing (${r.loaded} loaded), ` +
    `reconcile every ${r.reconcileMs} ms, one ${r.windowSec.toFixed(1)} s window. PostgreSQL transactions are this database's (pg_stat_database), the harness's two readings included.`,
  '',
  '| loaded workflows | PostgreSQL transactions/s | Accord server, cores | PostgreSQL, cores |',
  '|---|---|---|---|',
  `| ${r.loaded} | ${r.postgresTransactionsPerSec.toFixed(1)} | ${r.accordCores.toFixed(3)} | ${r.postgresCores.toFixed(3)} |`,
  ''
].join('\n')
