/**
 * Scenario 4: cold load of a workflow whose log holds 100,000 updates. Accord: written through the
 * store API with a keyframe every 100 versions, compacted by the retention pass (archive chunks),
 * then opened and loaded in a fresh process (Workflow.load), and synced by a stock client through
 * a freshly started server. Reference: the same updates through y-leveldb, loaded with getYDoc
 * (which replays every update and then flushes them into one), before and after that flush, and
 * synced through a freshly started reference server.
 */
import { cp } from 'node:fs/promises'
import path from 'node:path'
import { forkRpc } from './ipc.ts'
import { freshDir, withServer, type Context } from './context.ts'
import { spread, type Spread } from './stats.ts'
import type { Kind } from './servers.ts'

export interface ColdLoadResult {
  updates: number
  accord: {
    writeMs: number, compactMs: number, chunks: number, replayAllMs: number
    /** In a fresh process (cold JIT): opening LevelDB, Workflow.load, both. */
    openMs: Spread, loadMs: Spread, totalMs: Spread
    /** In a warm process (a running server loading a workflow that is not in memory). */
    warmLoadMs: Spread
    firstSyncMs: Spread
  }
  reference: { writeMs: number, firstLoadMs: Spread, compactedLoadMs: Spread, compactedWarmLoadMs: Spread, firstSyncMs: Spread }
}

const task = async <T>(cmd: string, args: unknown): Promise<T> => {
  const child = await forkRpc<{ pid: number }>(path.join(import.meta.dirname, 'cold-load-entry.ts'), [])
  try {
    return await child.call<T>(cmd, args, 600_000)
  } finally {
    await child.stop()
  }
}

const check = (ok: boolean, what: string): void => {
  if (!ok) throw new Error(`cold load: ${what} did not hold the whole workflow`)
}

/** A fresh server process on `dir` each time, so every sync loads the workflow cold. */
const firstSyncs = async (ctx: Context, kind: Kind, dir: string, id: string, n: number): Promise<number[]> => {
  const out: number[] = []
  for (let run = 0; run < ctx.runs; run++) {
    await withServer(ctx, kind, 'cold', async server => {
      const r = await task<{ ms: number, ok: boolean }>('clientSync', { url: server.url, id, n })
      check(r.ok, `${kind} first sync`)
      out.push(r.ms)
    }, { dataDir: dir })
  }
  return out
}

export const runColdLoad = async (ctx: Context): Promise<ColdLoadResult> => {
  const n = ctx.quick ? 10_000 : 100_000
  const id = 'cold'
  const accordDir = await freshDir(ctx, 'cold-accord')
  ctx.log(`  Accord: writing ${n} updates through the store API`)
  const w = await task<{ writeMs: number, compactMs: number, replayAllMs: number, chunks: number }>('accordWrite', { dir: accordDir, id, n })
  const loads: Array<{ openMs: number, loadMs: number, totalMs: number }> = []
  const warmLoads: number[] = []
  for (let run = 0; run < (ctx.quick ? 2 : Math.max(3, ctx.runs)); run++) {
    const r = await task<{ openMs: number, loadMs: number, totalMs: number, ok: boolean }>('accordLoad', { dir: accordDir, id, warm: false })
    check(r.ok, 'Accord load')
    loads.push(r)
    const w = await task<{ loadMs: number, ok: boolean }>('accordLoad', { dir: accordDir, id, warm: true })
    check(w.ok, 'Accord load')
    warmLoads.push(w.loadMs)
  }
  ctx.log(`    fresh process open+load ${loads.map(l => l.totalMs.toFixed(1)).join(', ')} ms; running process load ${warmLoads.map(x => x.toFixed(1)).join(', ')} ms`)
  const accordSyncs = await firstSyncs(ctx, 'accord', accordDir, id, n)

  const refDir = await freshDir(ctx, 'cold-reference')
  ctx.log(`  reference: writing ${n} updates through y-leveldb`)
  const rw = await task<{ writeMs: number }>('refWrite', { dir: refDir, id, n })
  // Loading flushes the log into one update, so every first sync through a fresh reference
  // server gets its own copy of the unflushed store.
  const refSyncDirs: string[] = []
  for (let run = 0; run < ctx.runs; run++) {
    const dir = await freshDir(ctx, 'cold-reference-sync')
    await cp(refDir, dir, { recursive: true })
    refSyncDirs.push(dir)
  }
  const first = await task<{ totalMs: number, ok: boolean }>('refLoad', { dir: refDir, id, warm: false })
  check(first.ok, 'reference load')
  const compacted: number[] = []
  const compactedWarm: number[] = []
  for (let run = 0; run < (ctx.quick ? 2 : Math.max(3, ctx.runs)); run++) {
    const r = await task<{ totalMs: number, ok: boolean }>('refLoad', { dir: refDir, id, warm: false })
    check(r.ok, 'reference load')
    compacted.push(r.totalMs)
    const w = await task<{ totalMs: number, ok: boolean }>('refLoad', { dir: refDir, id, warm: true })
    check(w.ok, 'reference load')
    compactedWarm.push(w.totalMs)
  }
  const refSyncs: number[] = []
  for (const dir of refSyncDirs) refSyncs.push(...await firstSyncs({ ...ctx, runs: 1 }, 'reference', dir, id, n))
  ctx.log(`    reference first load ${first.totalMs.toFixed(0)} ms, after its flush ${compacted.map(x => x.toFixed(1)).join(', ')} ms`)
  return {
    updates: n,
    accord: {
      writeMs: w.writeMs,
      compactMs: w.compactMs,
      chunks: w.chunks,
      replayAllMs: w.replayAllMs,
      openMs: spread(loads.map(l => l.openMs)),
      loadMs: spread(loads.map(l => l.loadMs)),
      totalMs: spread(loads.map(l => l.totalMs)),
      warmLoadMs: spread(warmLoads),
      firstSyncMs: spread(accordSyncs)
    },
    reference: {
      writeMs: rw.writeMs,
      firstLoadMs: spread([first.totalMs]),
      compactedLoadMs: spread(compacted),
      compactedWarmLoadMs: spread(compactedWarm),
      firstSyncMs: spread(refSyncs)
    }
  }
}
