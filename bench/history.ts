/**
 * History read benchmark: a workflow with 10,000 versions written through a real server by a real
 * SDK agent (each version one ~1 KB state change), then stateAt of random versions (hot and
 * archived), history pages of 100, and the compression ratio of archive chunks and keyframes.
 * Writes bench/results/history.{json,md} (or into $BENCH_HISTORY_OUT). Run by bench/run.ts (npm run bench),
 * or alone: npx tsx bench/history.ts
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { Level } from 'level'
import { createServer } from '../server/server.ts'
import { openWorkflow, type JsonObject } from '../src/node/index.ts'
import { unframe } from '../src/store/frame.ts'
import { chunkParts, decompress } from '../src/store/codec.ts'

const VERSIONS = Number(process.env.BENCH_VERSIONS ?? 10_000)
const SAMPLES = 300

const percentile = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
}
const ms = (x: number): string => x.toFixed(2)

const dir = await mkdtemp(path.join(os.tmpdir(), 'accord-bench-history-'))
const server = createServer({ port: 0, dataDir: dir, log: { level: 'warn' } })
const { url } = await server.listen()
const agent = openWorkflow('bench-history', { url, agentId: 'bench' })
await agent.whenSynced()

let persisted = 0
let wake: (() => void) | null = null
await agent.subscribe({ after: 0 }, record => {
  persisted = record.version
  wake?.()
}).ready

const t0 = performance.now()
for (let i = 0; i < VERSIONS; i++) {
  agent.update(d => {
    const tasks = (d.tasks as JsonObject[] | undefined) ?? Array.from({ length: 10 }, (_, k): JsonObject => ({ id: k, title: `task ${k} ${'x'.repeat(40)}`, status: 'todo', attempts: 0 }))
    const t = tasks[i % tasks.length] as JsonObject
    t.status = ['todo', 'doing', 'done'][i % 3] as string
    t.attempts = i
    d.tasks = tasks
    d.step = i
  })
  if (persisted < i + 1) await new Promise<void>(resolve => { wake = resolve })
}
const writeSeconds = (performance.now() - t0) / 1000
await agent.close()

const archived = await server.store.archivedThrough('bench-history')
const timeStateAt = async (versions: number[]): Promise<number[]> => {
  const out: number[] = []
  for (const v of versions) {
    const start = performance.now()
    await server.stateAt('bench-history', v)
    out.push(performance.now() - start)
  }
  return out
}
const random = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1))
const all = await timeStateAt(Array.from({ length: SAMPLES }, () => random(1, VERSIONS)))
const hot = await timeStateAt(Array.from({ length: 100 }, () => random(archived + 1, VERSIONS)))
const cold = archived > 0 ? await timeStateAt(Array.from({ length: 100 }, () => random(1, archived))) : []
const pages: number[] = []
for (let i = 0; i < 100; i++) {
  const before = random(101, VERSIONS + 1)
  const start = performance.now()
  await server.history('bench-history', { limit: 100, before })
  pages.push(performance.now() - start)
}
const headPages: number[] = []
for (let i = 0; i < 100; i++) {
  const start = performance.now()
  await server.history('bench-history', { limit: 100 })
  headPages.push(performance.now() - start)
}
await server.close()

// Compression: archive chunks and keyframes, stored size vs decompressed size.
const rawBytes = (isChunk: boolean, payload: Uint8Array): number => {
  const parts = isChunk ? chunkParts(payload) : null
  if (parts === null) return decompress(payload).length
  return (parts.storedKeyframe.length > 0 ? decompress(parts.storedKeyframe).length : 0) + decompress(parts.body).length
}
const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
let stored = 0
let raw = 0
for await (const [k, v] of db.iterator({ gt: 'w!bench-history!', lt: 'w!bench-history!~' })) {
  if (!k.includes('!arch!') && !k.includes('!kf!')) continue
  stored += v.length
  raw += rawBytes(k.includes('!arch!'), unframe(k, v))
}
await db.close()
await rm(dir, { recursive: true, force: true })

const result = {
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
  date: new Date().toISOString(),
  versions: VERSIONS,
  archivedThrough: archived,
  writeVersionsPerSecond: Math.round(VERSIONS / writeSeconds),
  stateAtMs: { p50: percentile(all, 0.5), p95: percentile(all, 0.95), max: Math.max(...all) },
  stateAtHotMs: { p50: percentile(hot, 0.5), p95: percentile(hot, 0.95) },
  stateAtArchivedMs: cold.length > 0 ? { p50: percentile(cold, 0.5), p95: percentile(cold, 0.95) } : null,
  historyPage100Ms: { p50: percentile(pages, 0.5), p95: percentile(pages, 0.95) },
  historyHeadPage100Ms: { p50: percentile(headPages, 0.5), p95: percentile(headPages, 0.95) },
  compression: { rawBytes: raw, storedBytes: stored, ratio: raw / Math.max(1, stored) }
}
const md = `# History benchmark (${result.date})

Machine: ${result.machine}. ${VERSIONS} versions of a ~1 KB JSON state, versions <= ${archived} archived.

| measure | p50 | p95 | target |
|---|---|---|---|
| stateAt, random version | ${ms(result.stateAtMs.p50)} ms | ${ms(result.stateAtMs.p95)} ms | p50 <= 20 ms |
| stateAt, hot version | ${ms(result.stateAtHotMs.p50)} ms | ${ms(result.stateAtHotMs.p95)} ms | |
| stateAt, archived version | ${result.stateAtArchivedMs === null ? '-' : ms(result.stateAtArchivedMs.p50) + ' ms'} | ${result.stateAtArchivedMs === null ? '-' : ms(result.stateAtArchivedMs.p95) + ' ms'} | |
| history page of 100, newest | ${ms(result.historyHeadPage100Ms.p50)} ms | ${ms(result.historyHeadPage100Ms.p95)} ms | <= 5 ms |
| history page of 100, random position | ${ms(result.historyPage100Ms.p50)} ms | ${ms(result.historyPage100Ms.p95)} ms | |

Archive chunks and keyframes: ${raw} bytes raw, ${stored} stored (Brotli q5): ratio ${result.compression.ratio.toFixed(1)}x.
Writing the history (one agent, each version awaited): ${result.writeVersionsPerSecond} versions/s.
`
const outDir = process.env.BENCH_HISTORY_OUT ?? path.join(import.meta.dirname, 'results')
await mkdir(outDir, { recursive: true })
await writeFile(path.join(outDir, 'history.json'), JSON.stringify(result, null, 2) + '\n')
await writeFile(path.join(outDir, 'history.md'), md)
process.stdout.write(md)
