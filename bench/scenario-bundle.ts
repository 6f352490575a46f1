/**
 * Scenario 8 (`npm run bench -- --only bundle`): the browser SDK's bundle size, minified and
 * gzip, against Yjs + y-websocket bundled alone and the 25 KB gzip budget, with a breakdown per
 * package. Needs `dist/` (`npm run build`). Reported in bench/results/bench.md only: a size is
 * no performance figure, so the README's benchmark table leaves it out.
 */
import type { Context } from './context.ts'
import { measureBundle, type BundleReport } from './bundle-size.ts'

export type BundleResult = BundleReport

export const runBundle = async (ctx: Context): Promise<BundleResult> => {
  const report = await measureBundle()
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`
  ctx.log(`  SDK ${kb(report.sdk.minified)} minified, ${kb(report.sdk.gzip)} gzip; Yjs + y-websocket ${kb(report.baseline.gzip)} gzip; budget left ${kb(report.marginGzip)}`)
  return report
}
