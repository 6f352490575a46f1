/**
 * One measured load step against one server, and a ladder of rising steps until saturation.
 * Persisted throughput is counted from the store side (BenchServer.persisted) over the
 * measurement window, never from sends; CPU of the server and of the load process is read from
 * /proc over the same window, so a step limited by the load generator is visible as such.
 */
import type { RpcChild } from './ipc.ts'
import type { StepResult } from './load.ts'
import type { BenchServer } from './servers.ts'
import { cpuSeconds, sleep, type Latency } from './stats.ts'

export interface StepOutcome {
  /** Offered rate (updates/s) and what the generator actually sent. */
  rate: number
  sentRate: number
  /** Updates the store acknowledged per second during the window. */
  persistedRate: number
  latency: Latency
  /** Fraction of the expected receipts (sends in the window x other agents) that arrived. */
  delivered: number
  /** The generator's lag behind its schedule (p99, ms). */
  lagP99: number
  /** CPU used in the window, in cores (1 = one core busy). */
  serverCores: number
  loadCores: number
  /** The store kept up with less than 90% of what was sent, or receipts went missing. */
  saturated: boolean
  /** The generator could not send the offered rate (the figure is then a lower bound). */
  loadBound: boolean
}

export type Load = RpcChild<{ pid: number }>

export interface StepTiming { warmupMs: number, durationMs: number }

export const measureStep = async (server: BenchServer, load: Load, rate: number, t: StepTiming): Promise<StepOutcome> => {
  const running = load.call<StepResult>('step', { rate, warmupMs: t.warmupMs, durationMs: t.durationMs, drainMs: 2000 }, 60_000 + 3 * (t.warmupMs + t.durationMs))
  await sleep(t.warmupMs)
  // Each reading is timed on its own: a busy server answers /metrics late.
  const sample = async (): Promise<{ c: number, l: number, tc: number, p: number, tp: number }> => {
    const [c, l] = await Promise.all([server.cpu(), cpuSeconds(load.child.pid)])
    const tc = performance.now()
    const p = await server.persisted()
    return { c, l, tc, p, tp: performance.now() }
  }
  const a = await sample()
  await sleep(t.durationMs)
  const b = await sample()
  const seconds = (b.tc - a.tc) / 1000
  const [c0, l0, c1, l1] = [a.c, a.l, b.c, b.l]
  const r = await running
  const persistedRate = (b.p - a.p) / ((b.tp - a.tp) / 1000)
  const delivered = r.expected === 0 ? 1 : r.received / r.expected
  return {
    rate,
    sentRate: r.sentRate,
    persistedRate,
    latency: r.latency,
    delivered,
    lagP99: r.lagP99,
    serverCores: (c1 - c0) / seconds,
    loadCores: (l1 - l0) / seconds,
    saturated: persistedRate < 0.9 * r.sentRate || delivered < 0.95,
    loadBound: r.sentRate < 0.9 * rate || r.lagP99 > 100
  }
}

/** Waits (bounded) until the server's persisted count stops moving: the backlog of a step is stored. */
export const settle = async (server: BenchServer, maxMs = 5000): Promise<void> => {
  const until = performance.now() + maxMs
  let last = await server.persisted()
  while (performance.now() < until) {
    await sleep(300)
    const now = await server.persisted()
    if (now === last) return
    last = now
  }
}

export interface Ladder {
  steps: StepOutcome[]
  /** Highest persisted rate of any step (the saturation throughput when a step saturated). */
  peak: number
  /** Index into `rates` of the first of the last saturated (or load-bound) steps, or -1. */
  saturatedAt: number
  /** The peak was limited by the load generator, not by the server. */
  loadBound: boolean
  /** Why the ladder stopped early (the server failed), if it did. */
  error?: string
}

/**
 * Runs `rates` in order until two consecutive steps saturated or were load-bound (one such step
 * may be a hiccup), or the rates run out.
 */
export const ladder = async (server: BenchServer, load: Load, rates: number[], t: StepTiming): Promise<Ladder> => {
  const steps: StepOutcome[] = []
  let saturatedAt = -1
  let error: string | undefined
  for (let i = 0; i < rates.length; i++) {
    let s: StepOutcome
    try {
      s = await measureStep(server, load, rates[i] as number, t)
    } catch (err) {
      // A server that fell over at this rate ends the ladder; the steps so far still count.
      error = `at ${rates[i]}/s: ${(err as Error).message}${server.lastError === undefined ? '' : ` (server: ${server.lastError()})`}`
      process.stderr.write(`    ${server.kind} ${error}\n`)
      if (saturatedAt < 0) saturatedAt = i
      break
    }
    steps.push(s)
    process.stderr.write(`    ${server.kind} ${Math.round(s.rate)}/s: persisted ${Math.round(s.persistedRate)}/s, p99 ${s.latency.p99.toFixed(1)} ms, server ${s.serverCores.toFixed(2)} cores, load ${s.loadCores.toFixed(2)} cores${s.saturated ? ' SATURATED' : ''}${s.loadBound ? ' LOAD-BOUND' : ''}\n`)
    await settle(server)
    const flagged = (x: StepOutcome | undefined): boolean => x !== undefined && (x.saturated || x.loadBound)
    if (flagged(s) && saturatedAt < 0) saturatedAt = i
    if (!flagged(s) && saturatedAt === i - 1) saturatedAt = -1
    if (flagged(s) && flagged(steps[i - 1])) break
  }
  if (steps.length === 0) return { steps, peak: Number.NaN, saturatedAt, loadBound: false, error }
  const peakStep = steps.reduce((best, s) => s.persistedRate > best.persistedRate ? s : best, steps[0] as StepOutcome)
  return { steps, peak: peakStep.persistedRate, saturatedAt, loadBound: peakStep.loadBound || (!steps.some(s => s.saturated) && steps.some(s => s.loadBound)), error }
}
