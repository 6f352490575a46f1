/**
 * How big the browser SDK is for an app that bundles it: esbuild (minified, browser platform,
 * ESM) over the compiled entry `dist/src/index.js` (run `npm run build` first), twice: all of
 * its exports (schemas included), and only `openWorkflow` (what an app that opens workflows and
 * uses their history and runtime APIs ships: tree-shaking drops the rest, zod with it). Against
 * a baseline of Yjs + y-websocket bundled alone (their whole public API), with the bytes each
 * package contributes (from esbuild's metafile). Used by the `bundle` bench scenario and by
 * test/bundle.test.ts.
 *
 *   const size = await measureBundle()
 *   size.openWorkflow.gzip - size.baseline.gzip   // what Accord adds on top of Yjs, gzip bytes
 */
import { access } from 'node:fs/promises'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'

/** Accord's budget over the baseline (issue 16): 25 KB gzip. */
export const BUNDLE_BUDGET_GZIP = 25 * 1024

export const BASELINE_SOURCE = "export * from 'yjs'\nexport * from 'y-websocket'\n"

export interface BundleSize {
  minified: number
  gzip: number
  /** Minified output bytes per package (`accord` for our own code), largest first. */
  packages: Record<string, number>
  /** The input files that put code into the bundle (relative to the project root; esbuild also
   * reads files whose code tree-shaking then drops entirely, those are not listed). */
  inputs: string[]
  /** Imports left out of the bundle (a browser cannot resolve them): must stay empty. */
  external: string[]
}

export interface BundleReport {
  entry: string
  /** Every export of the entry. */
  sdk: BundleSize
  /** `import { openWorkflow }` only. */
  openWorkflow: BundleSize
  baseline: BundleSize
  budgetGzip: number
  /** Budget left for each SDK bundle (negative: over budget), gzip bytes. */
  marginGzip: { sdk: number, openWorkflow: number }
}

const root = path.resolve(import.meta.dirname, '..')
const APP = 'app.js'

/** The package an input file belongs to: the node_modules folder name, or `accord`. */
const packageOf = (input: string): string => {
  const i = input.lastIndexOf('node_modules/')
  if (i < 0) return 'accord'
  const parts = input.slice(i + 'node_modules/'.length).split('/')
  return parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1]}` : parts[0] ?? input
}

const bundle = async (options: esbuild.BuildOptions): Promise<BundleSize> => {
  const result = await esbuild.build({
    ...options, absWorkingDir: root, bundle: true, minify: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent'
  })
  const code = result.outputFiles[0]?.contents ?? new Uint8Array()
  const output = Object.values(result.metafile.outputs)[0]
  const packages: Record<string, number> = {}
  for (const [input, info] of Object.entries(output?.inputs ?? {})) {
    // The stand-in app (stdin) only re-exports.
    if (input === APP) continue
    const name = packageOf(input)
    packages[name] = (packages[name] ?? 0) + info.bytesInOutput
  }
  return {
    minified: code.byteLength,
    gzip: gzipSync(code, { level: 9 }).byteLength,
    packages: Object.fromEntries(Object.entries(packages).sort((a, b) => b[1] - a[1])),
    inputs: Object.entries(output?.inputs ?? {}).filter(([, info]) => info.bytesInOutput > 0).map(([input]) => input),
    external: (output?.imports ?? []).filter(i => i.external).map(i => i.path)
  }
}

/** Bundles the SDK's browser entry (compiled, or `src/index.ts` itself) and the Yjs + y-websocket baseline. */
export const measureBundle = async (entry = 'dist/src/index.js'): Promise<BundleReport> => {
  await access(path.join(root, entry)).catch(() => { throw new Error(`${entry} is missing: run \`npm run build\` first`) })
  const source = (contents: string): esbuild.BuildOptions => ({ stdin: { contents, resolveDir: root, loader: 'js', sourcefile: APP } })
  const sdk = await bundle({ entryPoints: [entry] })
  const openWorkflow = await bundle(source(`export { openWorkflow } from './${entry}'\n`))
  const baseline = await bundle(source(BASELINE_SOURCE))
  const margin = (b: BundleSize): number => baseline.gzip + BUNDLE_BUDGET_GZIP - b.gzip
  return { entry, sdk, openWorkflow, baseline, budgetGzip: BUNDLE_BUDGET_GZIP, marginGzip: { sdk: margin(sdk), openWorkflow: margin(openWorkflow) } }
}
