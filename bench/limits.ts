/**
 * The machine's limits, measured in the same run as the servers: raw LevelDB batched-put
 * throughput (`level` 10, the same key shape and value sizes as Accord's log entries) and the raw
 * `ws` loopback echo round trip (echo server in its own process). Everything is bounded in count
 * and time.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { Level } from 'level'
import WebSocket from 'ws'
import { forkRpc } from './ipc.ts'
import { latency, type Latency } from './stats.ts'
import { typicalUpdates } from './workload.ts'

export interface LevelResult { batch: number, valueBytes: number, putsPerSecond: number }
export interface EchoResult { bytes: number, roundTrip: Latency }

/** Puts per second into a fresh LevelDB, `batch` puts per db.batch, one batch in flight, for about `ms`. */
export const levelPuts = async (batch: number, ms: number): Promise<LevelResult> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'accord-bench-level-'))
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  const values = typicalUpdates(200)
  const valueBytes = values.reduce((n, v) => n + v.length, 0) / values.length
  let n = 0
  try {
    const started = performance.now()
    const maxPuts = 2_000_000
    while (performance.now() - started < ms && n < maxPuts) {
      const ops = []
      for (let i = 0; i < batch; i++, n++) {
        ops.push({ type: 'put' as const, key: `w!bench-${n % 20}!log!${n.toString(16).padStart(16, '0')}`, value: values[n % values.length] as Uint8Array })
      }
      await db.batch(ops)
    }
    return { batch, valueBytes, putsPerSecond: n / ((performance.now() - started) / 1000) }
  } finally {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Sequential round trips of `bytes`-byte binary messages to an echo server in another process. */
export const wsEcho = async (bytes: number, count: number): Promise<EchoResult> => {
  const echo = await forkRpc<{ port: number }>(path.join(import.meta.dirname, 'echo-entry.ts'), [])
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${echo.ready.port}`)
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    const message = new Uint8Array(bytes).fill(7)
    const samples: number[] = []
    const warmup = Math.min(1000, count)
    const deadline = performance.now() + 30_000
    for (let i = 0; i < warmup + count && performance.now() < deadline; i++) {
      const start = performance.now()
      await new Promise<void>(resolve => {
        ws.once('message', () => { resolve() })
        ws.send(message)
      })
      if (i >= warmup) samples.push((performance.now() - start) * 1000)
    }
    ws.close()
    return { bytes, roundTrip: latency(samples) }
  } finally {
    await echo.stop()
  }
}

export interface Limits { level: LevelResult[], echo: EchoResult }

export const measureLimits = async (quick: boolean): Promise<Limits> => {
  const ms = quick ? 1000 : 3000
  const level = [await levelPuts(1, ms), await levelPuts(100, ms)]
  const bytes = Math.round(level[0]?.valueBytes ?? 80) + 2
  const echo = await wsEcho(bytes, quick ? 3000 : 10_000)
  return { level, echo }
}
