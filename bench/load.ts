/**
 * The load-generator process (forked by bench/run.ts): real, unmodified `y-websocket` clients
 * (WebsocketProvider over `ws`), driven open loop at a fixed rate. Every agent writes its own key
 * of its workflow's state; every other agent of that workflow receives it and records the latency
 * from the scheduled send time (so a slow server cannot hide queueing: no coordinated omission).
 * Updates a server merged into one message all count as received when it arrives.
 *
 * Commands (see bench/ipc.ts): connect, step, disconnect, openClose. Every loop is bounded in
 * count and in time.
 */
import { performance } from 'node:perf_hooks'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { serveRpc } from './ipc.ts'
import { latency, percentile, sleep, type Latency } from './stats.ts'
import { agentValue, fillKilobyte, seqOf, stateMap } from './workload.ts'

interface Agent {
  name: string
  doc: Y.Doc
  provider: WebsocketProvider
  map: Y.Map<unknown>
  seq: number
  /** Scheduled send time of each of this agent's updates, by seq (a ring). */
  sentAt: Float64Array
  /** The agents of the same workflow, by name. */
  team: Map<string, Agent>
  /** Per sender: the highest seq this agent has received. */
  seen: Map<string, number>
}

const RING = 1 << 16

let agents: Agent[] = []
let agentsPerWorkflow = 1
/** Latency samples of updates scheduled inside the measurement window. */
let samples = new Float64Array(1 << 16)
let sampleCount = 0
let windowFrom = Number.POSITIVE_INFINITY
let windowTo = Number.NEGATIVE_INFINITY
let receivedInWindow = 0
/** BENCH_SLOW=<ms>: receipts slower than this, as [ms since the window opened, latency, receiver], printed per step (a diagnostic). */
const slowOver = Number(process.env.BENCH_SLOW ?? 0)
let slow: Array<[number, number, string]> = []

const record = (ms: number): void => {
  if (sampleCount === samples.length) {
    const bigger = new Float64Array(samples.length * 2)
    bigger.set(samples)
    samples = bigger
  }
  samples[sampleCount++] = ms
}

const openProvider = (url: string, workflowId: string, agent: string): { doc: Y.Doc, provider: WebsocketProvider } => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, workflowId, doc, {
    WebSocketPolyfill: WebSocket as any,
    params: { agent },
    // Agents live in other processes in real life; in one process BroadcastChannel would bypass the server.
    disableBc: true,
    maxBackoffTime: 1000
  })
  return { doc, provider }
}

const synced = (provider: WebsocketProvider, timeoutMs: number): Promise<boolean> =>
  provider.synced
    ? Promise.resolve(true)
    : new Promise(resolve => {
      const timer = setTimeout(() => { resolve(false) }, timeoutMs)
      provider.once('sync', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })

/**
 * Opens `perWorkflow` agents on each workflow, `batch` at a time, and waits until all synced.
 * With `urls`, agent a of every workflow connects to `urls[a % urls.length]` (a chosen server per
 * agent, for the cross-server figures); otherwise every agent to `url`.
 */
const connect = async ({ url, urls, workflows, perWorkflow, batch = 100, timeoutMs = 60_000 }: { url: string, urls?: string[], workflows: string[], perWorkflow: number, batch?: number, timeoutMs?: number }): Promise<{ agents: number, ms: number, unsynced: number }> => {
  await disconnect()
  agentsPerWorkflow = perWorkflow
  const started = performance.now()
  // Ordered so that consecutive sends go to different workflows: index = agent * W + workflow.
  const order: Array<{ wf: string, name: string, to: string }> = []
  for (let a = 0; a < perWorkflow; a++) for (const wf of workflows) order.push({ wf, name: `agent-${a}`, to: urls?.[a % urls.length] ?? url })
  let unsynced = 0
  const teams = new Map<string, Map<string, Agent>>()
  for (let i = 0; i < order.length; i += batch) {
    const group = order.slice(i, i + batch).map(({ wf, name, to }) => {
      const { doc, provider } = openProvider(to, wf, name)
      const team = teams.get(wf) ?? new Map<string, Agent>()
      teams.set(wf, team)
      const agent: Agent = { name, doc, provider, map: stateMap(doc), seq: 0, sentAt: new Float64Array(RING), team, seen: new Map() }
      team.set(name, agent)
      // A server may merge several updates of one sender into one message (group commit): the
      // value then shows only the newest, so every seq up to it counts as received now.
      agent.map.observe(event => {
        if (event.transaction.local) return
        const now = performance.now()
        for (const key of event.keysChanged) {
          const sender = team.get(key)
          const seq = seqOf(agent.map.get(key))
          if (sender === undefined || !(seq >= 0)) continue
          const from = Math.max((agent.seen.get(key) ?? -1) + 1, seq - RING + 1)
          for (let q = from; q <= seq; q++) {
            const at = sender.sentAt[q & (RING - 1)] as number
            if (at >= windowFrom && at < windowTo) {
              receivedInWindow++
              record(now - at)
              if (slowOver > 0 && now - at > slowOver) slow.push([Math.round(at - windowFrom), Math.round(now - at), agent.name])
            }
          }
          if (seq > (agent.seen.get(key) ?? -1)) agent.seen.set(key, seq)
        }
      })
      agents.push(agent)
      return agent
    })
    const left = timeoutMs - (performance.now() - started)
    const results = await Promise.all(group.map(a => synced(a.provider, Math.max(1000, left))))
    unsynced += results.filter(ok => !ok).length
  }
  return { agents: agents.length, ms: performance.now() - started, unsynced }
}

const disconnect = async (): Promise<void> => {
  for (const a of agents) {
    a.provider.destroy()
    a.doc.destroy()
  }
  agents = []
  await sleep(50)
}

export interface StepResult {
  rate: number
  /** Updates sent and the rate actually achieved. */
  sent: number
  sentRate: number
  /** Receipts expected for updates scheduled in the window vs received before the drain ended. */
  expected: number
  received: number
  latency: Latency
  /** How late sends left compared to their schedule (the generator's own lag). */
  lagP99: number
  lagMax: number
  /** Mean bytes of the agent updates sent. */
  updateBytes: number
}

/**
 * Sends `rate` updates per second for warmupMs + durationMs, round-robin over the agents, open
 * loop (a timer fires every millisecond and sends what is due). Latency counts updates scheduled
 * after warmupMs; waits up to drainMs for their receipts.
 */
const step = async ({ rate, warmupMs, durationMs, drainMs = 3000 }: { rate: number, warmupMs: number, durationMs: number, drainMs?: number }): Promise<StepResult> => {
  if (agents.length === 0) throw new Error('connect first')
  sampleCount = 0
  receivedInWindow = 0
  const total = Math.max(1, Math.round(rate * (warmupMs + durationMs) / 1000))
  const interval = 1000 / rate
  const t0 = performance.now() + 5
  windowFrom = t0 + warmupMs
  windowTo = t0 + warmupMs + durationMs
  const deadline = t0 + 2 * (warmupMs + durationMs) + 5000
  const lags: number[] = []
  let sentBytes = 0
  let inWindow = 0
  let i = 0
  const measureBytes = (u: Uint8Array, _origin: unknown, _doc: Y.Doc, tr: Y.Transaction): void => {
    if (tr.local) sentBytes += u.length
  }
  for (const a of agents) a.doc.on('update', measureBytes)
  let prev = performance.now()
  const gaps: Array<[number, number]> = []
  while (i < total && performance.now() < deadline) {
    const now = performance.now()
    if (now - prev > 10) gaps.push([Math.round(now - t0), Math.round(now - prev)])
    prev = now
    const due = Math.min(total, Math.floor((now - t0) / interval) + 1)
    for (; i < due; i++) {
      const at = t0 + i * interval
      if ((i & 15) === 0) lags.push(now - at)
      if (at >= windowFrom) inWindow++
      const agent = agents[i % agents.length] as Agent
      agent.sentAt[agent.seq & (RING - 1)] = at
      agent.map.set(agent.name, agentValue(at, agent.seq++))
    }
    await sleep(1)
  }
  if (process.env.BENCH_GAPS === '1') process.stderr.write(`gaps ${JSON.stringify(gaps)}\n`)
  const sendSeconds = (performance.now() - t0) / 1000
  for (const a of agents) a.doc.off('update', measureBytes)
  const expected = inWindow * (agentsPerWorkflow - 1)
  const drainUntil = performance.now() + drainMs
  while (receivedInWindow < expected && performance.now() < drainUntil) await sleep(10)
  const result: StepResult = {
    rate,
    sent: i,
    sentRate: i / sendSeconds,
    expected,
    received: receivedInWindow,
    latency: latency(samples.subarray(0, sampleCount)),
    lagP99: percentile(lags, 0.99),
    lagMax: Math.max(0, ...lags),
    updateBytes: i > 0 ? sentBytes / i : 0
  }
  if (slowOver > 0) process.stderr.write(`slow receipts ${JSON.stringify(slow)}\n`)
  slow = []
  windowFrom = Number.POSITIVE_INFINITY
  windowTo = Number.NEGATIVE_INFINITY
  return result
}

/**
 * Opens each workflow with one agent, writes about 1 KB of JSON (or one small update), and
 * closes it again, `concurrency` at a time.
 */
const openClose = async ({ url, workflows, concurrency = 50, kilobyte = true, timeoutMs = 300_000 }: { url: string, workflows: string[], concurrency?: number, kilobyte?: boolean, timeoutMs?: number }): Promise<{ done: number, failed: number, ms: number }> => {
  const started = performance.now()
  let next = 0
  let done = 0
  let failed = 0
  const worker = async (): Promise<void> => {
    while (next < workflows.length && performance.now() - started < timeoutMs) {
      const id = workflows[next++] as string
      const { doc, provider } = openProvider(url, id, 'seeder')
      try {
        if (!await synced(provider, 10_000)) {
          failed++
          continue
        }
        if (kilobyte) fillKilobyte(doc, next)
        else stateMap(doc).set('seeder', agentValue(performance.now(), next))
        // The update is on the socket; give the server a moment to read it before the close.
        await sleep(5)
        done++
      } finally {
        provider.destroy()
        doc.destroy()
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { done, failed, ms: performance.now() - started }
}

serveRpc({ connect, step, disconnect, openClose, stats: () => ({ agents: agents.length }) }, { pid: process.pid })
