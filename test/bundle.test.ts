/**
 * The browser SDK as an app's bundler sees it (esbuild, minified, browser platform): it must
 * bundle without any Node module or builtin, and stay within 25 KB gzip over Yjs + y-websocket
 * bundled alone (issue 16), both as `import { openWorkflow }` and with every export. Bundles
 * `src/index.ts` itself, so no stale `dist/` can pass for it; `npm run bench -- --only bundle`
 * reports the same for `dist/src/index.js`.
 */
import { describe, expect, it } from 'vitest'
import { BUNDLE_BUDGET_GZIP, measureBundle, type BundleReport } from '../bench/bundle-size.ts'

// Packages (and our own folders) that only run in Node, or that the light SDK must not pull in.
const NODE_ONLY = [/node_modules\/(ws|level|classic-level|abstract-level|pg|ioredis|y-leveldb)\//, /^node:/, /(^|\/)src\/(node|store)\//, /(^|\/)server\//]
const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`

let report: Promise<BundleReport> | null = null
const measured = (): Promise<BundleReport> => (report ??= measureBundle('src/index.ts'))

describe('browser bundle', () => {
  it('bundles for the browser with no Node module, builtin or server code', async () => {
    const { sdk, openWorkflow } = await measured()
    for (const bundle of [sdk, openWorkflow]) {
      expect(bundle.external).toEqual([])
      expect(bundle.inputs.filter(input => NODE_ONLY.some(re => re.test(input)))).toEqual([])
      // What the SDK is: its own code on Yjs and y-websocket.
      expect(bundle.packages.yjs).toBeGreaterThan(0)
      expect(bundle.packages['y-websocket']).toBeGreaterThan(0)
      expect(bundle.packages.accord).toBeGreaterThan(0)
    }
  })

  it('ships zod/mini for the exported schemas, and no zod at all for openWorkflow alone', async () => {
    const { sdk, openWorkflow } = await measured()
    expect(sdk.inputs.filter(input => /node_modules\/zod\/(v4\/)?(classic|locales)\//.test(input))).toEqual([])
    expect(sdk.packages.zod).toBeGreaterThan(0)
    expect(openWorkflow.packages.zod).toBeUndefined()
  })

  it(`stays within ${BUNDLE_BUDGET_GZIP / 1024} KB gzip over Yjs + y-websocket bundled alone`, async () => {
    const { sdk, openWorkflow, baseline, marginGzip } = await measured()
    process.stdout.write(`Yjs + y-websocket ${kb(baseline.gzip)} gzip; Accord adds ${kb(openWorkflow.gzip - baseline.gzip)} (openWorkflow, ${kb(openWorkflow.gzip)}), ${kb(sdk.gzip - baseline.gzip)} (every export, ${kb(sdk.gzip)})\n`)
    expect(baseline.gzip).toBeGreaterThan(10 * 1024)
    expect(openWorkflow.gzip - baseline.gzip).toBeLessThanOrEqual(BUNDLE_BUDGET_GZIP)
    expect(sdk.gzip - baseline.gzip).toBeLessThanOrEqual(BUNDLE_BUDGET_GZIP)
    expect(marginGzip.openWorkflow).toBe(baseline.gzip + BUNDLE_BUDGET_GZIP - openWorkflow.gzip)
  })
})
