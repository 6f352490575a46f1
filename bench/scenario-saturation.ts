/**
 * Scenario 1: 20 workflows x 5 agents. Rates are stepped until the store saturates, for Accord,
 * Accord without persistence and the reference, side by side in every run (fresh server and data
 * directory per run). Then latency at half of Accord's saturation rate, on all three, and on the
 * bare relay (bench/relay-entry.ts): what forwarding alone costs on this machine and generator.
 */
import { ids, withLoad, withServer, type Context } from './context.ts'
import { startRelay, type BenchServer, type Kind } from './servers.ts'
import { spread, type Latency, type Spread } from './stats.ts'
import { ladder, measureStep, settle, type Ladder, type Load, type StepOutcome } from './steps.ts'

export const KINDS: Kind[] = ['accord', 'accord-memory', 'reference']
const WORKFLOWS = 20
const AGENTS = 5

export interface SaturationResult {
  workflows: number
  agents: number
  /** Per kind: the ladder of every run. */
  ladders: Record<Kind, Ladder[]>
  /** Per kind: saturated persisted updates/s over runs. */
  saturation: Record<Kind, Spread>
  /** Per kind: was any run's peak limited by the load generator? */
  loadBound: Record<Kind, boolean>
  /** The rate used for the latency runs: half of Accord's saturation (first run). */
  halfRate: number
  /** Per kind: latency p50 / p99 over runs at halfRate, and the steps measured. */
  halfLatency: Record<Kind, { p50: Spread, p99: Spread, persisted: Spread, steps: StepOutcome[] }>
  /**
   * The same on the bare relay, which forwards each update as its own frame. Not a lower bound: a
   * server that merges updates into fewer frames leaves the load generator less to do.
   */
  bareRelay?: { p50: Spread, p99: Spread, steps: StepOutcome[] }
  /** Runs that failed (a server fell over), if any. */
  errors: string[]
}

const rungs = (from: number, to: number, factor: number): number[] => {
  const out: number[] = []
  for (let r = from; r <= to; r *= factor) out.push(Math.round(r))
  return out
}

export const runSaturation = async (ctx: Context): Promise<SaturationResult> => {
  const timing = ctx.quick ? { warmupMs: 500, durationMs: 1500 } : { warmupMs: 750, durationMs: 2250 }
  const allRates = ctx.quick ? rungs(1000, 60_000, 2) : rungs(500, 60_000, 1.5)
  const workflows = ids('sat', WORKFLOWS)
  const ladders = { accord: [], 'accord-memory': [], reference: [] } as Record<Kind, Ladder[]>
  const half = { accord: [], 'accord-memory': [], reference: [] } as Record<Kind, StepOutcome[]>
  /** Where later runs start: three rungs below the first run's saturation. */
  const startAt = new Map<Kind, number>()
  let halfRate = 0
  const errors: string[] = []
  const relayed: StepOutcome[] = []
  /** Latency at half of Accord's saturation: a warm-up step, then the measured one. */
  const atHalfRate = async (server: BenchServer, load: Load): Promise<StepOutcome> => {
    await measureStep(server, load, halfRate, { warmupMs: 500, durationMs: 1000 })
    await settle(server)
    const s = await measureStep(server, load, halfRate, { warmupMs: timing.warmupMs, durationMs: ctx.quick ? 2000 : 4000 })
    ctx.log(`    ${server.kind} at ${halfRate}/s: p50 ${s.latency.p50.toFixed(2)} ms, p99 ${s.latency.p99.toFixed(2)} ms`)
    return s
  }
  await withLoad(async load => {
    for (let run = 0; run < ctx.runs; run++) {
      for (const kind of KINDS) {
        ctx.log(`  run ${run + 1}/${ctx.runs}: ${kind}`)
        await withServer(ctx, kind, `sat-r${run}`, async server => {
          if (kind !== 'accord' && run === 0 && halfRate === 0) throw new Error('no rate for the latency runs: Accord failed in run 1')
          const c = await load.call<{ unsynced: number }>('connect', { url: server.url, workflows, perWorkflow: AGENTS })
          if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync with ${kind}`)
          const rates = allRates.slice(startAt.get(kind) ?? 0)
          const l = await ladder(server, load, rates, timing)
          ladders[kind].push(l)
          // A fresh server thrown straight into overload never recovers (cold JIT, growing
          // backlog): later runs climb from three rungs (~0.3x) below the first saturation.
          if (run === 0) startAt.set(kind, Math.max(0, (l.saturatedAt < 0 ? l.steps.length : l.saturatedAt) - 3))
          if (kind === 'accord' && run === 0 && Number.isFinite(l.peak)) halfRate = Math.max(50, Math.round(l.peak / 2))
          if (l.error !== undefined) errors.push(`${kind} run ${run + 1}: ${l.error}`)
          // The latency runs need a server that still answers.
          if (l.error !== undefined) return
          half[kind].push(await atHalfRate(server, load))
          await load.call('disconnect')
        }).catch((err: Error) => {
          errors.push(`${kind} run ${run + 1}: ${err.message}`)
          ctx.log(`    ${kind} run ${run + 1} failed: ${err.message}`)
          return load.call('disconnect').catch(() => {})
        })
      }
      if (halfRate === 0) continue
      ctx.log(`  run ${run + 1}/${ctx.runs}: relay`)
      const relay = await startRelay()
      try {
        const c = await load.call<{ unsynced: number }>('connect', { url: relay.url, workflows, perWorkflow: AGENTS })
        if (c.unsynced > 0) throw new Error(`${c.unsynced} agents did not sync with the relay`)
        relayed.push(await atHalfRate(relay, load))
      } catch (err) {
        errors.push(`relay run ${run + 1}: ${(err as Error).message}`)
      } finally {
        await load.call('disconnect').catch(() => {})
        await relay.stop()
      }
    }
  })
  const pick = (xs: StepOutcome[], f: (l: Latency) => number): Spread => spread(xs.map(s => f(s.latency)))
  const byKind = <T>(f: (kind: Kind) => T): Record<Kind, T> => Object.fromEntries(KINDS.map(k => [k, f(k)])) as Record<Kind, T>
  return {
    workflows: WORKFLOWS,
    agents: AGENTS,
    ladders,
    saturation: byKind(k => spread(ladders[k].map(l => l.peak))),
    loadBound: byKind(k => ladders[k].some(l => l.loadBound)),
    halfRate,
    errors,
    halfLatency: byKind(k => ({
      p50: pick(half[k], l => l.p50),
      p99: pick(half[k], l => l.p99),
      persisted: spread(half[k].map(s => s.persistedRate)),
      steps: half[k]
    })),
    bareRelay: relayed.length === 0 ? undefined : { p50: pick(relayed, l => l.p50), p99: pick(relayed, l => l.p99), steps: relayed }
  }
}
