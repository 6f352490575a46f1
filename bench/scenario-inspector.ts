/**
 * Scenario 8: the inspector's bundle size. Builds src/inspector with the package build's esbuild
 * options (bundle + minify, ESM, browser) in memory and reports the bytes of app.js and app.css,
 * raw and gzipped (what /ui sends), and the largest inputs of app.js.
 *
 *   tsx bench/scenario-inspector.ts     prints "inspector bundle: app.js … KB (… KB gzip), …"
 */
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { INSPECTOR_BUILD } from '../test/helpers/inspector.ts'

export interface InspectorResult {
  jsBytes: number
  jsGzipBytes: number
  cssBytes: number
  cssGzipBytes: number
  /** Bytes of app.js per package (or our own folder), largest first. */
  largest: Array<{ input: string, bytes: number }>
}

const root = path.resolve(import.meta.dirname, '..')

export const runInspector = async (): Promise<InspectorResult> => {
  // The same options as the package build and the browser tests (one place: test/helpers/inspector.ts).
  const result = await build({ ...INSPECTOR_BUILD, outfile: path.join(root, 'dist/ui/app.js'), write: false, metafile: true })
  const file = (suffix: string): Uint8Array => result.outputFiles.find(f => f.path.endsWith(suffix))?.contents ?? new Uint8Array()
  const js = file('app.js')
  const css = file('app.css')
  const output = Object.values(result.metafile.outputs).find(o => o.entryPoint !== undefined)
  const byPackage = new Map<string, number>()
  for (const [input, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) {
    const key = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1] ?? input.split('/').slice(0, 2).join('/')
    byPackage.set(key, (byPackage.get(key) ?? 0) + bytesInOutput)
  }
  return {
    jsBytes: js.length,
    jsGzipBytes: gzipSync(js).length,
    cssBytes: css.length,
    cssGzipBytes: gzipSync(css).length,
    largest: Array.from(byPackage, ([input, bytes]) => ({ input, bytes })).sort((a, b) => b.bytes - a.bytes).slice(0, 8)
  }
}

export const formatInspector = (r: InspectorResult): string => {
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`
  return `inspector bundle: app.js ${kb(r.jsBytes)} (${kb(r.jsGzipBytes)} gzip), app.css ${kb(r.cssBytes)} (${kb(r.cssGzipBytes)} gzip); largest inputs: ${r.largest.map(l => `${l.input} ${kb(l.bytes)}`).join(', ')}`
}

if (process.argv[1] === import.meta.filename) console.log(formatInspector(await runInspector()))
