/**
 * Scenario 10: the inspector's bundle size. Builds src/inspector with the package build's
 * esbuild options (bundle + minify, ESM, browser; the page app.js and its data worker
 * worker.js) in memory and reports the bytes of app.js, worker.js and app.css, raw and gzipped
 * (what /ui sends), and the largest inputs of each script.
 *
 *   tsx bench/scenario-inspector.ts     prints "inspector bundle: app.js … KB (… KB gzip), worker.js …"
 */
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { build, type Metafile } from 'esbuild'
import { INSPECTOR_BUILD } from '../test/helpers/inspector.ts'

export interface InspectorResult {
  jsBytes: number
  jsGzipBytes: number
  workerBytes: number
  workerGzipBytes: number
  cssBytes: number
  cssGzipBytes: number
  /** Bytes of app.js per package (or our own folder), largest first. */
  largest: Array<{ input: string, bytes: number }>
  /** The same for worker.js. */
  largestWorker: Array<{ input: string, bytes: number }>
}

const root = path.resolve(import.meta.dirname, '..')

const byPackage = (output: Metafile['outputs'][string] | undefined): Array<{ input: string, bytes: number }> => {
  const sizes = new Map<string, number>()
  for (const [input, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) {
    const key = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1] ?? input.split('/').slice(0, 2).join('/')
    sizes.set(key, (sizes.get(key) ?? 0) + bytesInOutput)
  }
  return Array.from(sizes, ([input, bytes]) => ({ input, bytes })).sort((a, b) => b.bytes - a.bytes).slice(0, 8)
}

export const runInspector = async (): Promise<InspectorResult> => {
  // The same options as the package build and the browser tests (one place: test/helpers/inspector.ts).
  const result = await build({ ...INSPECTOR_BUILD, outdir: path.join(root, 'dist/ui'), write: false, metafile: true })
  const file = (suffix: string): Uint8Array => result.outputFiles.find(f => f.path.endsWith(suffix))?.contents ?? new Uint8Array()
  const output = (suffix: string) => Object.entries(result.metafile.outputs).find(([f]) => f.endsWith(suffix))?.[1]
  const js = file('app.js')
  const worker = file('worker.js')
  const css = file('app.css')
  return {
    jsBytes: js.length,
    jsGzipBytes: gzipSync(js).length,
    workerBytes: worker.length,
    workerGzipBytes: gzipSync(worker).length,
    cssBytes: css.length,
    cssGzipBytes: gzipSync(css).length,
    largest: byPackage(output('app.js')),
    largestWorker: byPackage(output('worker.js'))
  }
}

export const formatInspector = (r: InspectorResult): string => {
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`
  const list = (l: Array<{ input: string, bytes: number }>): string => l.map(x => `${x.input} ${kb(x.bytes)}`).join(', ')
  return `inspector bundle: app.js ${kb(r.jsBytes)} (${kb(r.jsGzipBytes)} gzip), worker.js ${kb(r.workerBytes)} (${kb(r.workerGzipBytes)} gzip), app.css ${kb(r.cssBytes)} (${kb(r.cssGzipBytes)} gzip); largest inputs of app.js: ${list(r.largest)}; of worker.js: ${list(r.largestWorker)}`
}

if (process.argv[1] === import.meta.filename) console.log(formatInspector(await runInspector()))
