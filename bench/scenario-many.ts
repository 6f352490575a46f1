/**
 * Scenario 2: 1,000 workflows x 3 agents (3,000 real clients) at a steady rate, Accord and the
 * reference side by side: time to connect and sync every agent, persisted updates/s, latency.
 * One server per kind; the runs are consecutive windows on the same connections.
 */
import { ids, withLoad, withServer, type Context } from './context.ts'
import type { Kind } from './servers.ts'
import { spread, type Spread } from './stats.ts'
import { measureStep, settle, type StepOutcome } from './steps.ts'

const KINDS: Kind[] = ['accord', 'reference']

export interface ManyResult {
  workflows: number
  agents: number
  rate: number
  connectMs: Record<string, number>
  persisted: Record<string, Spread>
  p50: Record<string, Spread>
  p99: Record<string, Spread>
  steps: Record<string, StepOutcome[]>
}

export const runMany = async (ctx: Context): Promise<ManyResult> => {
  const workflows = ctx.quick ? 300 : 1000
  const agents = 3
  const rate = 1000
  const timing = ctx.quick ? { warmupMs: 1000, durationMs: 2000 } : { warmupMs: 1000, durationMs: 4000 }
  const result: ManyResult = { workflows, agents, rate, connectMs: {}, persisted: {}, p50: {}, p99: {}, steps: {} }
  await withLoad(async load => {
    for (const kind of KINDS) {
      ctx.log(`  ${kind}: connecting ${workflows * agents} agents`)
      await withServer(ctx, kind, 'many', async server => {
        const c = await load.call<{ ms: number, unsynced: number }>('connect', { url: server.url, workflows: ids('many', workflows), perWorkflow: agents, batch: 200, timeoutMs: 120_000 }, 180_000)
        if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync with ${kind}`)
        result.connectMs[kind] = c.ms
        const steps: StepOutcome[] = []
        for (let run = 0; run < ctx.runs; run++) {
          const s = await measureStep(server, load, rate, timing)
          ctx.log(`    ${kind} ${rate}/s: persisted ${Math.round(s.persistedRate)}/s, p50 ${s.latency.p50.toFixed(2)} ms, p99 ${s.latency.p99.toFixed(2)} ms, server ${s.serverCores.toFixed(2)} cores`)
          steps.push(s)
          await settle(server)
        }
        result.steps[kind] = steps
        result.persisted[kind] = spread(steps.map(s => s.persistedRate))
        result.p50[kind] = spread(steps.map(s => s.latency.p50))
        result.p99[kind] = spread(steps.map(s => s.latency.p99))
        await load.call('disconnect', undefined, 60_000)
      })
    }
  })
  return result
}
