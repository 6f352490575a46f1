/**
 * What the scenarios with their own table (run only when named: cluster, cluster-cost, workers)
 * share: writing `<name>.md` and `<name>.json` (bench/results/, or .scratch/ for a quick run) and
 * printing a spread as "median (min-max)".
 *
 *   await writeOwnTable(ctx, 'workers', result, markdown)
 *   fmtSpread(row.p99)   // "21.73 (16.34-25.75)"
 */
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Context } from './context.ts'
import { root } from './servers.ts'
import type { Spread } from './stats.ts'

export const fmtSpread = (s: Spread, digits = 2): string => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`

export const writeOwnTable = async (ctx: Context, name: string, result: unknown, md: string): Promise<void> => {
  const dir = ctx.quick ? path.join(root, '.scratch') : path.join(root, 'bench/results')
  await mkdir(dir, { recursive: true })
  await writeFile(path.join(dir, `${name}.md`), md)
  await writeFile(path.join(dir, `${name}.json`), JSON.stringify(result, null, 2) + '\n')
  ctx.log(md)
}
