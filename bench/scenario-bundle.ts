/**
 * Scenario 8 (`npm run bench -- --only bundle`): the browser SDK's bundle size, minified and
 * gzip, against Yjs + y-websocket bundled alone and the 25 KB gzip budget, with a breakdown per
 * package. Needs `dist/` (`npm run build`). Reported in bench/results/bench.md only: a size is
 * no performance figure, so the README's benchmark table leaves it out.
 */
import type { Context } from './context.ts'
import { measureBundle, type BundleReport } from './bundle-size.ts'

/** The report without the lists of input files (the test's business, long in bench.json). */
export type BundleResult = BundleReport

const withoutInputs = <T extends { inputs: string[] }>(size: T): T => ({ ...size, inputs: [] })

export const runBundle = async (ctx: Context): Promise<BundleResult> => {
  const report = await measureBundle()
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`
  ctx.log(`  openWorkflow ${kb(report.openWorkflow.minified)} minified, ${kb(report.openWorkflow.gzip)} gzip (every export: ${kb(report.sdk.gzip)}); Yjs + y-websocket ${kb(report.baseline.gzip)} gzip; budget left ${kb(report.marginGzip.openWorkflow)} (${kb(report.marginGzip.sdk)})`)
  return { ...report, sdk: withoutInputs(report.sdk), openWorkflow: withoutInputs(report.openWorkflow), baseline: withoutInputs(report.baseline) }
}
