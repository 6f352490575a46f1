/**
 * A quick latency probe for one server at fixed rates, with the saturation scenario's load (20
 * workflows x 5 stock y-websocket agents, bench/load.ts) and its measurement (bench/steps.ts):
 * what finding and checking a latency change needs, in about 15 s per run instead of the full
 * ladder. Runs alternate between the variants given, so machine drift hits them alike.
 *
 *   npm run bench:probe -- --rates 3000,8000 --runs 4 accord accord-memory relay
 *   npm run bench:probe -- --rates 3000 --runs 6 'accord:{}' 'accord:{"retention":{"maxVersions":1e9}}'
 *
 * A variant is a kind (accord, accord-memory, reference, relay), optionally followed by ':' and
 * createServer options as JSON; Accord then runs through bench/server-entry.ts instead of the
 * CLI, so compare `accord:{}` with other option sets. `accord@<node flags>` runs the CLI with Node
 * or V8 flags (comma-separated: 'accord@--max-semi-space-size=32'). `--pin` pins the load
 * generator to core 1 and each server to core 0, as the floor scenario does. Prints one line per
 * step and, per variant and rate, the median p99 with its range.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { withLoad } from './context.ts'
import { pinToCore } from './pin.ts'
import { startRelay, startServer, type BenchServer, type Kind } from './servers.ts'
import { spread } from './stats.ts'
import { measureStep, settle } from './steps.ts'

const WORKFLOWS = Array.from({ length: 20 }, (_, i) => `probe-${i}`)
const AGENTS = 5

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rates: { type: 'string', default: '3000' }, runs: { type: 'string', default: '3' }, pin: { type: 'boolean', default: false } }
})
const rates = (values.rates ?? '3000').split(',').map(Number).filter(r => r > 0)
const runs = Math.max(1, Number(values.runs))
const variants = (positionals.length > 0 ? positionals : ['accord']).map(v => {
  const at = v.indexOf('@')
  const nodeArgs = at < 0 ? undefined : v.slice(at + 1).split(',')
  const rest = at < 0 ? v : v.slice(0, at)
  const i = rest.indexOf(':')
  const kind = (i < 0 ? rest : rest.slice(0, i)) as Kind | 'relay'
  if (!['accord', 'accord-memory', 'reference', 'relay'].includes(kind)) throw new Error(`unknown kind ${kind}`)
  return { name: v, kind, nodeArgs, options: i < 0 ? undefined : JSON.parse(rest.slice(i + 1)) as Record<string, unknown> }
})

const start = async (v: (typeof variants)[number], dataDir: string): Promise<BenchServer> =>
  v.kind === 'relay'
    ? startRelay()
    : startServer(v.kind, { dataDir, nodeArgs: v.nodeArgs, ...(v.options === undefined ? {} : { heap: true, serverOptions: v.options }) })

const p99s = new Map<string, number[]>()
await withLoad(async load => {
  if (values.pin === true) await pinToCore(load.child.pid as number, 1)
  for (let run = 0; run < runs; run++) {
    for (const v of variants) {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'accord-probe-'))
      const server = await start(v, dataDir)
      try {
        if (values.pin === true) await pinToCore(server.pid, 0)
        const c = await load.call<{ unsynced: number }>('connect', { url: server.url, workflows: WORKFLOWS, perWorkflow: AGENTS })
        if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync with ${v.name}`)
        await measureStep(server, load, rates[0] as number, { warmupMs: 500, durationMs: 1000 })
        await settle(server)
        for (const rate of rates) {
          const s = await measureStep(server, load, rate, { warmupMs: 750, durationMs: 4000 })
          const key = `${v.name} at ${rate}/s`
          p99s.set(key, [...p99s.get(key) ?? [], s.latency.p99])
          process.stdout.write(`run ${run + 1} ${key}: p50 ${s.latency.p50.toFixed(2)} p99 ${s.latency.p99.toFixed(2)} max ${s.latency.max.toFixed(1)} ms; server ${s.serverCores.toFixed(2)} cores, load ${s.loadCores.toFixed(2)}, load lag p99 ${s.lagP99.toFixed(1)} ms\n`)
          await settle(server)
        }
      } finally {
        await load.call('disconnect')
        await server.stop()
        await rm(dataDir, { recursive: true, force: true })
      }
    }
  }
})
for (const [key, xs] of p99s) {
  const s = spread(xs)
  process.stdout.write(`${key}: p99 median ${s.median.toFixed(2)} ms (${s.min.toFixed(2)}-${s.max.toFixed(2)}, ${xs.length} runs)\n`)
}
