/**
 * Scenario 3: one hot workflow with 50 agents (every update fans out to 49 peers). Rates are
 * stepped until saturation, for Accord and the reference; latency is compared at a fixed rate
 * every server sustains.
 */
import { withLoad, withServer, type Context } from './context.ts'
import type { Kind } from './servers.ts'
import { spread, type Spread } from './stats.ts'
import { ladder, measureStep, settle, type Ladder, type StepOutcome } from './steps.ts'

const KINDS: Kind[] = ['accord', 'reference']
const AGENTS = 50
/** The rate at which latency is compared. */
export const HOT_RATE = 100

export interface HotResult {
  agents: number
  rate: number
  ladders: Record<string, Ladder[]>
  peak: Record<string, Spread>
  loadBound: Record<string, boolean>
  p50: Record<string, Spread>
  p99: Record<string, Spread>
}

export const runHot = async (ctx: Context): Promise<HotResult> => {
  const timing = ctx.quick ? { warmupMs: 500, durationMs: 1500 } : { warmupMs: 750, durationMs: 2250 }
  const rates = ctx.quick ? [400, 1600] : [200, 400, 800, 1600, 3200]
  const result: HotResult = { agents: AGENTS, rate: HOT_RATE, ladders: {}, peak: {}, loadBound: {}, p50: {}, p99: {} }
  await withLoad(async load => {
    for (const kind of KINDS) {
      ctx.log(`  ${kind}`)
      await withServer(ctx, kind, 'hot', async server => {
        const c = await load.call<{ unsynced: number }>('connect', { url: server.url, workflows: ['hot'], perWorkflow: AGENTS })
        if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync with ${kind}`)
        const ladders: Ladder[] = []
        const fixed: StepOutcome[] = []
        let startAt = 0
        for (let run = 0; run < ctx.runs; run++) {
          fixed.push(await measureStep(server, load, HOT_RATE, timing))
          await settle(server)
          // Later runs start two rungs below the first run's saturation.
          const l = await ladder(server, load, rates.slice(startAt), timing)
          if (run === 0) startAt = Math.max(0, (l.saturatedAt < 0 ? l.steps.length : l.saturatedAt) - 2)
          ladders.push(l)
        }
        result.ladders[kind] = ladders
        result.peak[kind] = spread(ladders.map(l => l.peak))
        result.loadBound[kind] = ladders.some(l => l.loadBound)
        result.p50[kind] = spread(fixed.map(s => s.latency.p50))
        result.p99[kind] = spread(fixed.map(s => s.latency.p99))
        await load.call('disconnect')
      })
    }
  })
  return result
}
