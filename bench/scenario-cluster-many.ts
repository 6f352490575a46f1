/**
 * Scenario 11 (own flag: `npm run bench -- --only cluster-many`): many workflows over a cluster.
 * Three `accord serve` processes on PostgreSQL + Redis; 10,000 workflows (2,000 with --quick) are
 * each created and written once over HTTP through a server picked at random, 64 requests in
 * flight. Idle workflows should leave memory and give up their writer lease: the scenario samples
 * every server's resident memory and loaded workflows and the number of writer leases in Redis
 * while it writes and after, until the servers evicted everything, and reports memory per
 * server, lease churn (leases taken per second, from the load counter of every server) and the
 * cost of a cold load (the servers' own load histogram). Needs PostgreSQL and Redis.
 * Results: bench/results/cluster-many.{json,md}.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import Redis from 'ioredis'
import type { Context } from './context.ts'
import { root, startServer, type BenchServer } from './servers.ts'
import { POSTGRES_URL, REDIS_URL, dropServiceData, servicesMissing } from '../test/helpers/services.ts'

export interface ClusterManyResult {
  workflows: number
  servers: number
  evictionGraceMs: number
  /** Seconds to create and write every workflow, and the rate. */
  writeSec: number
  perSec: number
  perServer: Array<{ startRssMb: number, peakRssMb: number, idleRssMb: number, peakLoaded: number, loads: number, loadP50Ms: number | null }>
  peakLeases: number
  leasesAfterIdle: number
  /** Seconds from the last write until no server held a workflow. */
  drainSec: number
  /** Leases taken per second while writing (every load on the writer path takes or learns one). */
  leaseChurnPerSec: number
  skipped?: string
}

const rssMb = async (pid: number): Promise<number> => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return kb / 1024
}

const metricsOf = async (url: string): Promise<string> => (await fetch(`${url.replace(/^ws/, 'http')}/metrics`)).text()

const value = (text: string, name: string): number => {
  const line = text.split('\n').find(l => l.startsWith(`${name} `))
  return line === undefined ? 0 : Number(line.slice(name.length + 1))
}

/** The median of a prom-client histogram, by linear interpolation inside its bucket (ms). */
const histogramP50Ms = (text: string, name: string): number | null => {
  const buckets = text.split('\n').filter(l => l.startsWith(`${name}_bucket{`))
    .map(l => ({ le: Number(/le="([^"]+)"/.exec(l)?.[1]?.replace('+Inf', 'Infinity')), count: Number(l.split(' ').at(-1)) }))
  const total = buckets.at(-1)?.count ?? 0
  if (total === 0) return null
  let lower = 0
  let below = 0
  for (const b of buckets) {
    if (b.count >= total / 2) {
      const upper = Number.isFinite(b.le) ? b.le : lower * 2
      const share = b.count === below ? 0 : (total / 2 - below) / (b.count - below)
      return (lower + (upper - lower) * share) * 1000
    }
    lower = b.le
    below = b.count
  }
  return null
}

export const runClusterMany = async (ctx: Context): Promise<ClusterManyResult | { skipped: string }> => {
  const missing = await servicesMissing()
  if (missing !== null) {
    ctx.log(`  cluster-many skipped: ${missing}`)
    return { skipped: missing }
  }
  const workflows = ctx.quick ? 2000 : 10_000
  const n = Number(process.env.BENCH_CLUSTER_SERVERS ?? 3)
  const evictionGraceMs = 1000
  const schema = `accord_bench_${randomBytes(4).toString('hex')}`
  const prefix = `${schema}:`
  const args = ['--store', `${POSTGRES_URL}?schema=${schema}`, '--bus', REDIS_URL, '--bus-prefix', prefix, '--eviction-grace-ms', String(evictionGraceMs)]
  const servers: BenchServer[] = []
  const redis = new Redis(REDIS_URL)
  try {
    for (let i = 0; i < n; i++) servers.push(await startServer('accord', { dataDir: ctx.tmp, serveArgs: args })) // one at a time: the first migrates
    const http = servers.map(s => s.url.replace(/^ws/, 'http'))
    const startRss = await Promise.all(servers.map(s => rssMb(s.pid)))
    const peakRss = startRss.slice()
    const peakLoaded = servers.map(() => 0)
    let peakLeases = 0
    const leases = async (): Promise<number> => {
      let count = 0
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}writer:*`, 'COUNT', 1000)
        cursor = next
        count += keys.length
      } while (cursor !== '0')
      return count
    }
    const sample = async (): Promise<{ loaded: number[], leases: number }> => {
      const loaded: number[] = []
      for (let i = 0; i < n; i++) {
        peakRss[i] = Math.max(peakRss[i] as number, await rssMb(servers[i]!.pid))
        const l = value(await metricsOf(servers[i]!.url), 'accord_workflows_loaded')
        peakLoaded[i] = Math.max(peakLoaded[i] as number, l)
        loaded.push(l)
      }
      const held = await leases()
      peakLeases = Math.max(peakLeases, held)
      return { loaded, leases: held }
    }
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        await sample()
        await new Promise(resolve => setTimeout(resolve, 250))
      }
    })()

    ctx.log(`  writing ${workflows} workflows through ${n} servers`)
    const t0 = performance.now()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < workflows) {
        const i = next++
        const base = http[Math.floor(Math.random() * n)] as string
        const id = `many-${i}`
        const created = await fetch(`${base}/v1/workflows`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workflowId: id, state: { n: i } }) })
        if (created.status !== 201) throw new Error(`creating ${id}: ${created.status} ${await created.text()}`)
        const other = http[Math.floor(Math.random() * n)] as string
        const patched = await fetch(`${other}/v1/workflows/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'add', path: '/written', value: true }]) })
        if (patched.status !== 200) throw new Error(`writing ${id}: ${patched.status} ${await patched.text()}`)
      }
    }
    await Promise.all(Array.from({ length: 64 }, worker))
    const writeSec = (performance.now() - t0) / 1000
    const loadsWhileWriting = (await Promise.all(servers.map(async s => value(await metricsOf(s.url), 'accord_workflow_load_seconds_count')))).reduce((a, b) => a + b, 0)
    ctx.log(`    ${Math.round(workflows / writeSec)} workflows/s; ${loadsWhileWriting} loads`)

    const t1 = performance.now()
    let drained: { loaded: number[], leases: number } = { loaded: [1], leases: 1 }
    while (performance.now() - t1 < 120_000) {
      drained = await sample()
      if (drained.loaded.every(l => l === 0) && drained.leases === 0) break
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    const drainSec = (performance.now() - t1) / 1000
    sampling = false
    await sampler
    const idleRss = await Promise.all(servers.map(s => rssMb(s.pid)))
    const texts = await Promise.all(servers.map(s => metricsOf(s.url)))
    const result: ClusterManyResult = {
      workflows,
      servers: n,
      evictionGraceMs,
      writeSec,
      perSec: workflows / writeSec,
      perServer: servers.map((_, i) => ({
        startRssMb: startRss[i] as number,
        peakRssMb: peakRss[i] as number,
        idleRssMb: idleRss[i] as number,
        peakLoaded: peakLoaded[i] as number,
        loads: value(texts[i] as string, 'accord_workflow_load_seconds_count'),
        loadP50Ms: histogramP50Ms(texts[i] as string, 'accord_workflow_load_seconds')
      })),
      peakLeases,
      leasesAfterIdle: drained.leases,
      drainSec,
      leaseChurnPerSec: loadsWhileWriting / writeSec
    }
    ctx.log(`    drained in ${drainSec.toFixed(1)} s; leases after: ${drained.leases}; peak leases ${peakLeases}`)
    const dir = path.join(root, ctx.quick ? '.scratch' : 'bench/results')
    await mkdir(dir, { recursive: true })
    await writeFile(path.join(dir, 'cluster-many.json'), JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2) + '\n')
    await writeFile(path.join(dir, 'cluster-many.md'), markdown(result))
    return result
  } finally {
    await redis.quit().catch(() => {})
    await Promise.all(servers.map(s => s.stop()))
    await dropServiceData({ schema, redisPrefix: prefix })
  }
}

const markdown = (r: ClusterManyResult): string => [
  '# Many workflows over a cluster (PostgreSQL store + Redis bus)',
  '',
  `${r.workflows.toLocaleString('en-US')} workflows, each created (POST) and written once (PATCH) over HTTP through a server picked at random for each request (64 in flight), ${r.servers} servers, eviction grace ${r.evictionGraceMs} ms. Written in ${r.writeSec.toFixed(1)} s (${Math.round(r.perSec)} workflows/s); every server then evicted every workflow and released every lease within ${r.drainSec.toFixed(1)} s of the last write.`,
  '',
  '| server | RSS at start, MB | peak RSS, MB | RSS after idle, MB | peak loaded workflows | loads | load time p50 under this load, ms |',
  '|---|---|---|---|---|---|---|',
  ...r.perServer.map((s, i) => `| ${i + 1} | ${s.startRssMb.toFixed(0)} | ${s.peakRssMb.toFixed(0)} | ${s.idleRssMb.toFixed(0)} | ${s.peakLoaded} | ${s.loads} | ${s.loadP50Ms === null ? '-' : s.loadP50Ms.toFixed(2)} |`),
  '',
  `Writer leases in Redis: at most ${r.peakLeases} held at once, ${r.leasesAfterIdle} after idle; lease churn ${Math.round(r.leaseChurnPerSec)} loads (each takes or learns a lease) per second while writing. Load time is the servers' own \`accord_workflow_load_seconds\` histogram (median interpolated in its bucket), queueing behind the other requests included: the servers ran CPU-bound. RSS after idle stays near its peak because V8 keeps the heap it grew; the loaded-workflow gauge and the leases are what fall to zero.`,
  ''
].join('\n')
