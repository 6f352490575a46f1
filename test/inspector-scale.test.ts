/**
 * The inspector with big workflows, measured in a real headless Chromium: a workflow with 10,000
 * versions (virtualised, paged timeline) and one with a 5 MB state (lazy tree). Records the time
 * until each view is usable and the long tasks (PerformanceObserver 'longtask') the page had,
 * prints them, and fails when the page froze (a long task over FREEZE_MS) or took too long.
 * The live document and the opened versions are held by the inspector's data worker, so the
 * page's thread only ever renders what is open.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, Page } from 'playwright-core'
import { useServers, headOf } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { api } from './helpers/http.ts'
import { hasChromium, launchChromium } from './helpers/browser.ts'
import { buildInspector, LONG_TASK_SCRIPT, longTasks } from './helpers/inspector.ts'
import { waitFor } from './helpers/wait.ts'

const { start } = useServers()
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of cleanups.splice(0)) await c() })

const skip = !hasChromium() && process.env.ACCORD_REQUIRE_SERVICES !== '1'
if (skip) console.log('inspector scale tests skipped: /usr/bin/chromium is not installed (apt-get install -y chromium; .ci/run does it)')

/**
 * A single main-thread task longer than this counts as a frozen page. With the data worker the
 * longest measured was 94-235 ms at load average 4-14 and one of 487 ms at load 12 (page start-up
 * work, stretched by the load: long tasks are wall-clock); before it, Yjs applying the 5 MB
 * first sync on the page was one task of 1.0 s idle and 2.7 s at load 12. 1.5 s leaves 3x for
 * CI, which runs this with the other heavy suites in parallel (load 16-20 measured); the test
 * above guards the design itself (no Yjs on the page) whatever the load.
 */
const FREEZE_MS = 1500
/** Time to a usable view: generous, the 2-core test machine is shared with other work (load average up to 16 measured). */
const USABLE_MS = 45_000

let uiDir = ''
let appInputs: string[] = []
beforeAll(async () => { if (!skip) ({ dir: uiDir, appInputs } = await buildInspector()) }, 60_000)

const openPage = async (): Promise<Page> => {
  const browser: Browser = await launchChromium()
  cleanups.push(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  await page.addInitScript(LONG_TASK_SCRIPT)
  return page
}

const now = (page: Page): Promise<number> => page.evaluate(() => performance.now())

/** Prints the timings and long tasks; returns the longest long task, overall and per phase. */
const report = async (page: Page, what: string, ms: Record<string, number>, marks: Record<string, number> = {}): Promise<{ longest: number, byPhase: Record<string, number> }> => {
  const tasks = await longTasks(page)
  // Which phase each long task of 100 ms or more fell in (marks: phase -> page time it started).
  const phases = Object.entries(marks).sort((a, b) => a[1] - b[1])
  const phaseOf = (start: number): string => phases.filter(([, at]) => at <= start).at(-1)?.[0] ?? 'page load'
  const big = tasks.filter(t => t.duration >= 100).map(t => `${phaseOf(t.start)} ${Math.round(t.duration)}`)
  if (big.length > 0) console.log(`inspector ${what}: long tasks by phase (ms): ${big.join(', ')}`)
  const byPhase: Record<string, number> = {}
  for (const t of tasks) byPhase[phaseOf(t.start)] = Math.max(byPhase[phaseOf(t.start)] ?? 0, t.duration)
  const longest = Math.max(0, ...tasks.map(t => t.duration))
  const timings = Object.entries(ms).map(([k, v]) => `${k} ${Math.round(v)} ms`).join(', ')
  console.log(`inspector ${what}: ${timings}; long tasks ${tasks.length}, total ${Math.round(tasks.reduce((s, t) => s + t.duration, 0))} ms, longest ${Math.round(longest)} ms`)
  return { longest, byPhase }
}

describe.skipIf(skip)('the inspector with big workflows', () => {
  it('keeps Yjs and the SDK out of the page: they run in the data worker', () => {
    // What makes a 5 MB first sync harmless to the page: the document is applied in worker.js.
    expect(appInputs.filter(input => /node_modules\/(yjs|y-websocket|y-protocols|lib0)\/|src\/client\//.test(input))).toEqual([])
    expect(appInputs.some(input => input.includes('node_modules/preact/'))).toBe(true)
  })

  it('pages and virtualises a timeline of 10,000 versions', async () => {
    const srv = await start({ ui: { dir: uiDir } })
    const http = `http://127.0.0.1:${srv.port}`
    const agent = sdkAgent(srv.url, 'long-history', 'writer')
    await agent.whenSynced()
    // One update per turn; the server cuts at most one version per turn, so count until 10,000.
    for (let i = 1; await headOf(srv, 'long-history') < 10_000; i++) {
      for (let j = 0; j < 200; j++) {
        agent.update(d => { d.counter = i * 1000 + j }, { description: `step ${i}.${j}` })
        await new Promise(resolve => setImmediate(resolve))
      }
      await waitFor(async () => (await headOf(srv, 'long-history')) > 0)
    }
    await agent.close()
    // The last updates may still be on their way when close() returns: the head is final once
    // the server has flushed and unloaded the workflow (no client left, no grace period).
    await waitFor(() => !srv.server.loadedWorkflows().includes('long-history'), { what: 'the workflow to be flushed and unloaded', timeoutMs: 60_000 })
    const head = await headOf(srv, 'long-history')
    expect(head).toBeGreaterThanOrEqual(10_000)

    const page = await openPage()
    const t0 = Date.now()
    await page.goto(`${http}/ui/w/long-history`)
    await page.waitForSelector(`.timeline[data-head="${head}"] .row[data-version="${head}"] .author`, { timeout: USABLE_MS })
    const firstView = Date.now() - t0
    // Only the rows on screen are in the DOM.
    const rows = await page.$$eval('.timeline .row', r => r.length)
    expect(rows).toBeLessThan(60)
    // The oldest version: scroll to the end, its page is fetched.
    const t1 = Date.now()
    await page.$eval('.timeline', el => { el.scrollTop = el.scrollHeight })
    await page.waitForSelector('.timeline .row[data-version="1"] .author', { timeout: USABLE_MS })
    const toOldest = Date.now() - t1
    // Keyboard: Home goes to the newest version and its diff.
    const t2 = Date.now()
    await page.focus('.timeline')
    await page.keyboard.press('Home')
    await page.waitForSelector(`.version-view[data-to="${head}"] .diff tbody tr`, { timeout: USABLE_MS })
    const toVersion = Date.now() - t2
    const { longest } = await report(page, `${head} versions`, { 'first view': firstView, 'scroll to v1': toOldest, 'open newest version': toVersion })
    expect(firstView).toBeLessThan(USABLE_MS)
    expect(longest).toBeLessThan(FREEZE_MS)
    expect((await api(http, 'GET', `/v1/workflows/long-history/history?limit=1`)).body[0].version).toBe(head)
  }, 240_000)

  it('renders a 5 MB state as a lazy tree, live and at a version', async () => {
    const srv = await start({ ui: { dir: uiDir } })
    const http = `http://127.0.0.1:${srv.port}`
    const items = Array.from({ length: 20_000 }, (_, i) => ({ id: `item-${i}`, title: `task ${i} `.padEnd(200, '.'), done: i % 3 === 0, n: i }))
    const state = { items, meta: { owner: 'bench' } }
    const bytes = JSON.stringify(state).length
    expect(bytes).toBeGreaterThan(5_000_000)
    expect((await api(http, 'POST', '/v1/workflows', { body: { workflowId: 'big-state', state } })).status).toBe(201)

    const page = await openPage()
    const t0 = Date.now()
    await page.goto(`${http}/ui/w/big-state`)
    await page.waitForSelector('.tree .node[data-path="/items"] > .toggle', { timeout: USABLE_MS })
    const firstView = Date.now() - t0
    const marks: Record<string, number> = {}
    marks.expand = await now(page)
    const t1 = Date.now()
    await page.click('.tree .node[data-path="/items"] > .toggle')
    await page.waitForSelector('.tree .node[data-path="/items/199"]')
    const expand = Date.now() - t1
    // Only the first page of children is rendered.
    expect(await page.$('.tree .node[data-path="/items/200"]')).toBeNull()
    // A live change is highlighted in the big tree too.
    marks['live change'] = await now(page)
    const t2 = Date.now()
    // Watch from before the write: the highlight lasts 1.5 s, and the PATCH reply (the whole 5 MB state) can come later.
    const flashed = page.waitForSelector('.tree .touched[data-path="/items/5"]', { timeout: USABLE_MS })
    await api(http, 'PATCH', '/v1/workflows/big-state', { raw: JSON.stringify([{ op: 'replace', path: '/items/5/done', value: true }]), headers: { 'content-type': 'application/json-patch+json' } })
    await flashed
    const liveChange = Date.now() - t2
    // Version 1 (the whole state added): its diff and state load as one page each.
    marks['open version'] = await now(page)
    const t3 = Date.now()
    await page.click('.timeline .row[data-version="1"]')
    await page.waitForSelector('.version-view[data-to="1"] .diff tbody tr', { timeout: USABLE_MS })
    const version = Date.now() - t3
    const { byPhase, longest } = await report(page, `${(bytes / 1e6).toFixed(1)} MB state`, { 'first view': firstView, 'expand 20,000 items': expand, 'live change': liveChange, 'open version 1': version }, marks)
    expect(firstView).toBeLessThan(USABLE_MS)
    // Every phase, the first sync included: Yjs applies the 5 MB document in the data worker, and
    // the worker parses the version's states and diff, so none of it runs on the page's thread.
    for (const phase of ['page load', 'expand', 'live change', 'open version']) expect(byPhase[phase] ?? 0, phase).toBeLessThan(FREEZE_MS)
    expect(longest).toBeLessThan(FREEZE_MS)
  }, 240_000)
})
