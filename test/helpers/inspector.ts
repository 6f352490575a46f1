/**
 * The inspector in tests: built from the sources with the same esbuild options as `npm run
 * build` (into a temp dir, so a test never sees a stale dist/ui), and screenshots of its views
 * into docs/images/.
 *
 *   const ui = await buildInspector()       // startServer({ ui: { dir: ui } })
 *   await screenshot(page, 'inspector-list') // docs/images/inspector-list.png
 */
import { mkdtemp } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { build, type BuildOptions } from 'esbuild'
import type { Page } from 'playwright-core'

const root = path.resolve(import.meta.dirname, '../..')

/** The esbuild options of the package build (`esbuild app=src/inspector/main.ts worker=src/inspector/worker.ts --bundle --minify ...`). */
export const INSPECTOR_BUILD: BuildOptions = {
  entryPoints: { app: path.join(root, 'src/inspector/main.ts'), worker: path.join(root, 'src/inspector/worker.ts') },
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  logLevel: 'silent'
}

/** Builds the app into a new temp dir; returns the dir, the sizes of app.js, worker.js and app.css, and the inputs of app.js. */
export const buildInspector = async (): Promise<{ dir: string, bytes: { js: number, worker: number, css: number }, appInputs: string[] }> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'accord-ui-'))
  const result = await build({ ...INSPECTOR_BUILD, outdir: dir, metafile: true })
  const output = (suffix: string) => Object.entries(result.metafile?.outputs ?? {}).find(([f]) => f.endsWith(suffix))?.[1]
  const size = (suffix: string): number => output(suffix)?.bytes ?? 0
  return { dir, bytes: { js: size('app.js'), worker: size('worker.js'), css: size('app.css') }, appInputs: Object.keys(output('app.js')?.inputs ?? {}) }
}

/** Saves a screenshot of the page as docs/images/<name>.png. */
export const screenshot = async (page: Page, name: string): Promise<void> => {
  await page.screenshot({ path: path.join(root, 'docs/images', `${name}.png`), fullPage: false })
}

/** Collects long tasks (PerformanceObserver 'longtask') from page start: read them with longTasks(page). */
export const LONG_TASK_SCRIPT = `(() => {
  window.__longTasks = []
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration }) })
    .observe({ type: 'longtask', buffered: true })
})()`

export const longTasks = (page: Page): Promise<Array<{ start: number, duration: number }>> =>
  page.evaluate(() => (window as unknown as { __longTasks: Array<{ start: number, duration: number }> }).__longTasks)
