/**
 * Scenario 6: stateAt and history on a workflow with 10,000 versions. Runs the history benchmark
 * (bench/history.ts: a real server and SDK agent write the versions, then random stateAt calls
 * and history pages of 100) in its own process and reads its results/history.json. The reference
 * has no history, so there is no ratio here.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import type { Context } from './context.ts'
import { root } from './servers.ts'

export interface HistoryResult {
  versions: number
  archivedThrough: number
  writeVersionsPerSecond: number
  stateAtMs: { p50: number, p95: number, max: number }
  stateAtHotMs: { p50: number, p95: number }
  stateAtArchivedMs: { p50: number, p95: number } | null
  historyPage100Ms: { p50: number, p95: number }
  historyHeadPage100Ms: { p50: number, p95: number }
  compression: { rawBytes: number, storedBytes: number, ratio: number }
}

export const runHistory = async (ctx: Context): Promise<HistoryResult> => {
  const versions = ctx.quick ? 2000 : 10_000
  // Only a full run replaces the committed bench/results/history.*.
  const out = ctx.quick ? ctx.tmp : path.join(root, 'bench/results')
  const args = ['--import', 'tsx', path.join(root, 'bench/history.ts')]
  if (ctx.profileDir !== undefined) args.unshift('--cpu-prof', '--cpu-prof-dir', path.join(ctx.profileDir, `history-${Date.now()}`))
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, BENCH_VERSIONS: String(versions), BENCH_HISTORY_OUT: out }, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000) })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 600_000)
    child.on('exit', code => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else reject(new Error(`bench/history.ts exited with ${code}: ${err}`))
    })
  })
  const result = JSON.parse(await readFile(path.join(out, 'history.json'), 'utf8')) as HistoryResult
  ctx.log(`    stateAt p50 ${result.stateAtMs.p50.toFixed(2)} ms, history page p50 ${result.historyHeadPage100Ms.p50.toFixed(2)} ms`)
  return result
}
