/**
 * Scenario 5: heap. Servers run with --expose-gc and report heapUsed after full GCs over IPC
 * (bench/server-entry.ts, bench/reference-hook.cjs).
 *  a. Accord: heap per loaded idle workflow holding ~1 KB of JSON (no connection; loaded over
 *     HTTP and kept by a long eviction grace), in a fresh server process over a seeded store.
 *  b. Accord and reference: heap per workflow held open by one idle stock client (the only way
 *     the reference keeps a document loaded), for a like-for-like ratio.
 *  c. Accord and reference: heap after 10,000 workflows were opened (1 KB written) and closed,
 *     against the heap before, once every workflow was unloaded again.
 */
import http from 'node:http'
import path from 'node:path'
import { ids, freshDir, withLoad, withServer, type Context } from './context.ts'
import type { BenchServer, Kind } from './servers.ts'
import { sleep } from './stats.ts'
import type { Load } from './steps.ts'

export interface HeapResult {
  idleWorkflows: number
  /** a: bytes per loaded idle workflow (no connection). */
  accordIdleBytes: number
  /** b: bytes per workflow held by one idle client. */
  connectedBytes: Record<string, number>
  openedClosed: number
  /** c: heap before and after, and after/before. */
  churn: Record<string, { before: number, after: number, ratio: number, loadedAfter: number, ms: number }>
}

const get = (url: string): Promise<void> => new Promise((resolve, reject) => {
  http.get(url, { agent: false }, res => {
    res.resume()
    res.on('end', () => { res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url}: ${res.statusCode}`)) })
  }).on('error', reject)
})

const untilLoaded = async (server: BenchServer, want: (n: number) => boolean, maxMs: number): Promise<number> => {
  const until = performance.now() + maxMs
  let n = await (server.loaded as () => Promise<number>)()
  while (!want(n) && performance.now() < until) {
    await sleep(250)
    n = await (server.loaded as () => Promise<number>)()
  }
  return n
}

const seed = async (ctx: Context, load: Load, kind: Kind, workflows: string[]): Promise<string> => {
  const dir = await freshDir(ctx, `heap-seed-${kind}`)
  await withServer(ctx, kind, 'heap-seed', async server => {
    const r = await load.call<{ done: number, failed: number }>('openClose', { url: server.url, workflows, concurrency: 32 }, 600_000)
    if (r.failed > 0) throw new Error(`seeding ${kind}: ${r.failed} workflows failed`)
  }, { dataDir: dir, heap: true, evictionGraceMs: 200 })
  return dir
}

export const runHeap = async (ctx: Context): Promise<HeapResult> => {
  const n = ctx.quick ? 200 : 1000
  const churnCount = ctx.quick ? 2000 : 10_000
  const workflows = ids('idle', n)
  const result: HeapResult = { idleWorkflows: n, accordIdleBytes: Number.NaN, connectedBytes: {}, openedClosed: churnCount, churn: {} }
  await withLoad(async load => {
    const seeded: Record<string, string> = {}
    for (const kind of ['accord', 'reference'] as const) {
      ctx.log(`  seeding ${n} workflows of ~1 KB JSON (${kind})`)
      seeded[kind] = await seed(ctx, load, kind, workflows)
    }

    await withServer(ctx, 'accord', 'heap-idle', async server => {
      const base = server.url.replace(/^ws/, 'http')
      await get(`${base}/v1/workflows/${workflows[0]}`)
      const before = await (server.heap as () => Promise<number>)()
      if (ctx.profileDir !== undefined) await server.snapshot?.(path.join(ctx.profileDir, 'heap-idle-before.heapsnapshot'))
      for (let i = 1; i < n; i += 16) await Promise.all(workflows.slice(i, i + 16).map(id => get(`${base}/v1/workflows/${id}`)))
      const loaded = await untilLoaded(server, x => x >= n, 10_000)
      if (loaded < n) throw new Error(`only ${loaded} of ${n} workflows stayed loaded`)
      const after = await (server.heap as () => Promise<number>)()
      result.accordIdleBytes = (after - before) / (n - 1)
      if (ctx.profileDir !== undefined && server.snapshot !== undefined) {
        // Where the bytes go: snapshots with 1 and with n workflows loaded, diffed per workflow.
        await server.snapshot(path.join(ctx.profileDir, 'heap-idle-after.heapsnapshot'))
      }
      ctx.log(`    Accord: ${(result.accordIdleBytes / 1024).toFixed(1)} KB per loaded idle workflow`)
    }, { dataDir: seeded.accord, heap: true, evictionGraceMs: 30 * 60_000 })

    for (const kind of ['accord', 'reference'] as const) {
      await withServer(ctx, kind, 'heap-connected', async server => {
        await load.call('connect', { url: server.url, workflows: workflows.slice(0, 1), perWorkflow: 1 })
        await load.call('disconnect')
        await untilLoaded(server, x => x === 0, 10_000)
        const before = await (server.heap as () => Promise<number>)()
        const c = await load.call<{ unsynced: number }>('connect', { url: server.url, workflows, perWorkflow: 1, batch: 50 }, 180_000)
        if (c.unsynced > 0) throw new Error(`${c.unsynced} clients did not sync with ${kind}`)
        await sleep(500)
        const after = await (server.heap as () => Promise<number>)()
        result.connectedBytes[kind] = (after - before) / n
        ctx.log(`    ${kind}: ${(result.connectedBytes[kind] / 1024).toFixed(1)} KB per workflow with one idle client`)
        await load.call('disconnect')
      }, { dataDir: seeded[kind], heap: true, evictionGraceMs: 1000 })
    }

    for (const kind of ['accord', 'reference'] as const) {
      ctx.log(`  ${kind}: opening and closing ${churnCount} workflows`)
      await withServer(ctx, kind, 'heap-churn', async server => {
        // Warm up every code path first, so the baseline is not a cold process.
        await load.call('openClose', { url: server.url, workflows: ids('warm', 200), concurrency: 32 }, 120_000)
        await untilLoaded(server, x => x === 0, 20_000)
        const before = await (server.heap as () => Promise<number>)()
        const started = performance.now()
        const r = await load.call<{ failed: number }>('openClose', { url: server.url, workflows: ids('churn', churnCount), concurrency: 32 }, 900_000)
        if (r.failed > 0) throw new Error(`${r.failed} workflows failed to open on ${kind}`)
        const ms = performance.now() - started
        const loadedAfter = await untilLoaded(server, x => x === 0, 30_000)
        const after = await (server.heap as () => Promise<number>)()
        result.churn[kind] = { before, after, ratio: after / before, loadedAfter, ms }
        ctx.log(`    ${kind}: heap ${(before / 2 ** 20).toFixed(1)} MB -> ${(after / 2 ** 20).toFixed(1)} MB (${((after / before - 1) * 100).toFixed(1)}%), ${loadedAfter} still loaded`)
      }, { heap: true, evictionGraceMs: 1000 })
    }
  })
  return result
}
