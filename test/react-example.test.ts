/**
 * examples/react, run as its users run it: `serve.ts` in a child process (bundles the app from
 * the package's browser build in dist/, so run `npm run build` first), the page in Chromium
 * under React StrictMode, a Node SDK agent next to it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { hasChromium, launchChromium } from './helpers/browser.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { removeTempDirs, tempDir } from './helpers/server.ts'
import { waitFor } from './helpers/wait.ts'

const root = path.resolve(import.meta.dirname, '..')
const skip = !hasChromium() && process.env.ACCORD_REQUIRE_SERVICES !== '1'
if (skip) console.log('react example test skipped: /usr/bin/chromium is not installed (apt-get install -y chromium)')

let child: ChildProcess | null = null
let browser: Browser | null = null
afterEach(async () => {
  await browser?.close()
  browser = null
  if (child !== null && child.exitCode === null && child.signalCode === null) {
    const c = child
    await new Promise<void>(resolve => { c.once('exit', () => { resolve() }); c.kill('SIGTERM') })
  }
  child = null
  await closeClients()
  await removeTempDirs()
})

interface Task { title: string, done: boolean }

describe.skipIf(skip)('examples/react (serve.ts + the page in Chromium)', () => {
  it('the page adds and ticks tasks a Node agent sees, and shows the agent\'s edits live', async () => {
    const dataDir = await tempDir()
    const c = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'examples/react/serve.ts'), '--port', '0', '--http-port', '0', '--data', dataDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    child = c
    let out = ''
    c.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    c.stderr?.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor(() => c.exitCode !== null || /^Page server: /m.test(out), { timeoutMs: 60_000, what: `serve.ts to start\n${out}` })
    const wsUrl = /^Accord sync server: (ws:\/\/\S+)/m.exec(out)?.[1]
    const pageUrl = /^Page server: +(http:\/\/\S+)/m.exec(out)?.[1]
    expect(wsUrl, out).toBeDefined()
    expect(pageUrl, out).toBeDefined()

    browser = await launchChromium()
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', err => { errors.push(err.message) })
    await page.goto(`${pageUrl}/?workflow=react-demo&agent=browser-1`)
    await page.locator('#status[data-status="synced"]').waitFor({ timeout: 15_000 })

    await page.fill('#new-task', 'write the docs')
    await page.press('#new-task', 'Enter')
    const node = sdkAgent(wsUrl!, 'react-demo', 'node-agent')
    await waitFor(() => (node.state.tasks as unknown as Task[] | undefined)?.[0]?.title === 'write the docs', { what: 'the page\'s task reaches the Node agent' })

    node.update(d => {
      d.title = 'Release 42'
      ;(d.tasks as unknown as Task[]).push({ title: 'from node', done: false })
    })
    await page.locator('#title', { hasText: 'Release 42' }).waitFor({ timeout: 15_000 })
    await page.locator('#tasks li', { hasText: 'from node' }).waitFor({ timeout: 15_000 })

    await page.locator('#tasks li', { hasText: 'from node' }).locator('input[type=checkbox]').check()
    await waitFor(() => (node.state.tasks as unknown as Task[])[1]?.done === true, { what: 'the tick reaches the Node agent' })
    expect(errors).toEqual([])
  })
})
