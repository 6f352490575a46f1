/**
 * The inspector at /ui in a real headless Chromium, on a real server with agents writing: the
 * live workflow list, the live state, the timeline, a diff, a compare, a restore, keyboard
 * stepping, URLs that reload to the same view, a read token refused the admin actions, real
 * conflicts and violations listed with their versions, and fork, promote and discard done from
 * the page. Saves a screenshot of each view to docs/images/.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, Page } from 'playwright-core'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { api, openSse } from './helpers/http.ts'
import { waitFor } from './helpers/wait.ts'
import { hasChromium, launchChromium } from './helpers/browser.ts'
import { buildInspector, screenshot } from './helpers/inspector.ts'
import { mintToken } from '../server/http/auth.ts'

const { start } = useServers()
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of cleanups.splice(0)) await c() })

// Skipped (with the reason printed) only outside CI: ACCORD_REQUIRE_SERVICES=1 makes it fail instead.
const skip = !hasChromium() && process.env.ACCORD_REQUIRE_SERVICES !== '1'
if (skip) console.log('inspector tests skipped: /usr/bin/chromium is not installed (apt-get install -y chromium; .ci/run does it)')

let uiDir = ''
beforeAll(async () => { if (!skip) uiDir = (await buildInspector()).dir }, 60_000)

const openBrowser = async (): Promise<{ page: Page, errors: string[] }> => {
  const browser: Browser = await launchChromium()
  cleanups.push(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  const errors: string[] = []
  page.on('pageerror', err => { errors.push(err.message) })
  return { page, errors }
}

const pathOf = (page: Page): string => new URL(page.url()).pathname

describe.skipIf(skip)('the inspector in a real browser', () => {
  it('lists workflows live, shows live state, the timeline, diffs, compares, restores, and keeps the view in the URL', async () => {
    const srv = await start({ ui: { dir: uiDir } })
    const http = `http://127.0.0.1:${srv.port}`
    const agent = sdkAgent(srv.url, 'release-42', 'planner')
    await agent.whenSynced()
    agent.update(d => { d.plan = { steps: ['design'], owner: 'planner' } }, { description: 'first plan', meta: { runId: 'run-7' } })
    expect((await api(http, 'POST', '/v1/workflows', { body: { workflowId: 'triage', state: { open: 3 } }, headers: { 'x-accord-agent': 'triager' } })).status).toBe(201)
    const versionOf = async (id: string): Promise<number> => (await api(http, 'GET', `/v1/workflows/${id}`)).body.version as number
    const waitVersion = async (id: string, v: number): Promise<void> => { while (await versionOf(id) < v) await new Promise(resolve => setImmediate(resolve)) }
    await waitVersion('release-42', 1)
    agent.update(d => { (d.plan as { steps: string[] }).steps.push('build') }, { description: 'add build step' })
    await waitVersion('release-42', 2)
    agent.update(d => { (d.plan as { owner: string }).owner = 'builder' }, { description: 'hand over' })
    await waitVersion('release-42', 3)

    const { page, errors } = await openBrowser()
    await page.goto(`${http}/ui`)
    await page.waitForSelector('tr[data-id="release-42"]')
    await page.waitForSelector('tr[data-id="triage"]')
    expect(await page.textContent('tr[data-id="release-42"] .version')).toBe('3')
    await page.waitForSelector('.live.on')
    await screenshot(page, 'inspector-list')

    // Live: a write by an agent over HTTP moves the version within a second, a new workflow appears.
    let t0 = Date.now()
    await api(http, 'PATCH', '/v1/workflows/triage', { raw: JSON.stringify([{ op: 'replace', path: '/open', value: 4 }]), headers: { 'content-type': 'application/json-patch+json' } })
    await page.waitForFunction(() => document.querySelector('tr[data-id="triage"] .version')?.textContent === '2', undefined, { timeout: 1000 })
    const listLatency = Date.now() - t0
    t0 = Date.now()
    await api(http, 'POST', '/v1/workflows', { body: { workflowId: 'late-comer', state: { hello: 'world' } } })
    await page.waitForSelector('tr[data-id="late-comer"]', { timeout: 1000 })
    console.log(`inspector: list update visible after ${listLatency} ms, new workflow after ${Date.now() - t0} ms`)
    await page.fill('input[type=search]', 'trI')
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 1)
    expect(await page.$('tr[data-id="triage"]')).not.toBeNull()
    await page.fill('input[type=search]', '')

    // A workflow: live state with presence, and the timeline with every version.
    await page.click('tr[data-id="release-42"] a')
    expect(pathOf(page)).toBe('/ui/w/release-42')
    await page.waitForSelector('.timeline[data-head="3"] .row[data-version="3"] .author')
    expect(await page.$$eval('.timeline .row', rows => rows.length)).toBe(3)
    expect(await page.textContent('.timeline .row[data-version="1"] .ids')).toBe('run-7')
    await page.waitForFunction(() => document.querySelector('.presence')?.textContent?.includes('planner') === true)
    // The tree opens lazily: /plan and /plan/steps are rendered once opened.
    await page.click('.node[data-path="/plan"] > .toggle')
    await page.click('.node[data-path="/plan/steps"] > .toggle')
    expect(await page.textContent('.node[data-path="/plan/steps/1"] .scalar')).toBe('"build"')
    t0 = Date.now()
    agent.update(d => { (d.plan as { steps: string[] }).steps.push('ship') }, { description: 'add ship step' })
    await page.waitForSelector('.tree .changed[data-path="/plan/steps/2"]', { timeout: 1000 })
    console.log(`inspector: live state change highlighted after ${Date.now() - t0} ms`)
    await page.waitForSelector('.timeline[data-head="4"]', { timeout: 1000 })
    await screenshot(page, 'inspector-workflow')

    // A version: its record, its diff from the previous one, the state at it.
    await page.click('.timeline .row[data-version="3"]')
    expect(pathOf(page)).toBe('/ui/w/release-42/v/3')
    await page.waitForSelector('.version-view[data-to="3"] .diff tbody tr')
    expect(await page.$$eval('.diff tbody tr', rows => rows.map(r => Array.from(r.children).map(c => c.textContent)))).toEqual([['replace', '/plan/owner', '"planner"', '"builder"']])
    expect(await page.textContent('.record .author')).toBe('planner')
    await screenshot(page, 'inspector-version')

    // Keyboard: down steps to the older version (the URL follows), up back.
    await page.focus('.timeline')
    await page.keyboard.press('ArrowDown')
    await page.waitForSelector('.version-view[data-to="2"]')
    expect(pathOf(page)).toBe('/ui/w/release-42/v/2')
    // The URL of a version reloads to the same view.
    await page.reload()
    await page.waitForSelector('.version-view[data-to="2"] .diff tbody tr')
    expect(await page.$eval('.timeline .row.selected', r => r.getAttribute('data-version'))).toBe('2')
    expect(await page.$$eval('.diff tbody tr .path', cells => cells.map(c => c.textContent))).toEqual(['/plan/steps/1'])

    // Compare two versions: shift+click the other end.
    await page.click('.timeline .row[data-version="4"]', { modifiers: ['Shift'] })
    await page.waitForSelector('.version-view[data-from="2"][data-to="4"] .diff tbody tr')
    expect(pathOf(page)).toBe('/ui/w/release-42/compare/2/4')
    // The compare view can render its rows in more than one pass: wait for the paths, then
    // assert (a timeout falls through to the assertion, which shows what was there).
    const comparePaths = (): Promise<Array<string | null>> => page.$$eval('.version-view[data-from="2"][data-to="4"] .diff tbody tr .path', cells => cells.map(c => c.textContent).sort())
    await page.waitForFunction(expected => JSON.stringify(Array.from(document.querySelectorAll('.version-view[data-from="2"][data-to="4"] .diff tbody tr .path')).map(c => c.textContent).sort()) === expected, JSON.stringify(['/plan/owner', '/plan/steps/2']), { timeout: 5000 }).catch(() => {})
    expect(await comparePaths()).toEqual(['/plan/owner', '/plan/steps/2'])
    await screenshot(page, 'inspector-compare')
    // The back button returns to the version before.
    await page.goBack()
    await page.waitForSelector('.version-view[data-from="1"][data-to="2"]')

    // Restore v2: a new version (5) whose state is v2's; the page moves to it.
    await page.click('button[data-action="restore v2"]')
    await page.waitForFunction(() => location.pathname === '/ui/w/release-42/v/5')
    await page.waitForSelector('.timeline[data-head="5"]')
    const restored = await api(http, 'GET', '/v1/workflows/release-42')
    expect(restored.body.version).toBe(5)
    expect(restored.body.state).toEqual((await api(http, 'GET', '/v1/workflows/release-42?version=2')).body.state)
    await page.waitForFunction(() => (document.querySelector('.timeline .row[data-version="5"] .desc')?.textContent ?? '').length > 0)

    // A snapshot shows on the timeline and in the list; restoring it makes version 6.
    expect((await api(http, 'POST', '/v1/workflows/release-42/snapshots', { body: { name: 'before-ship', version: 3, kind: 'manual' } })).status).toBe(201)
    await page.click('.timeline .row[data-version="4"]')
    await page.waitForSelector('.timeline .row[data-version="3"] .snap')
    expect(await page.textContent('.timeline .row[data-version="3"] .snap')).toBe('⚑ before-ship')
    await page.click('button[data-action="restore before-ship"]')
    await page.waitForFunction(() => location.pathname === '/ui/w/release-42/v/6')
    expect((await api(http, 'GET', '/v1/workflows/release-42')).body.state).toEqual((await api(http, 'GET', '/v1/workflows/release-42?version=3')).body.state)

    // The runtime, live: tasks (pending, then claimed with a lease), an agent's status, the session.
    await page.click('.wf-head a')
    await page.waitForSelector('.live-view .tasks')
    const post = (path: string, body: unknown, agentId = 'planner') => api(http, 'POST', `/v1/workflows/release-42${path}`, { body, headers: { 'x-accord-agent': agentId } })
    expect((await post('/tasks', { id: 'compile', payload: { target: 'linux' } })).status).toBe(201)
    await page.waitForSelector('.tasks tr.task.st-pending', { timeout: 1000 })
    expect((await post('/tasks/claim', { leaseMs: 60_000 }, 'builder')).status).toBe(200)
    await page.waitForFunction(() => /compile.*claimed.*builder.*lease ends in/.test(document.querySelector('.tasks tr.task')?.textContent ?? ''), undefined, { timeout: 1000 })
    expect((await post('/agents/builder/transition', { to: 'processing' }, 'builder')).status).toBe(200)
    await page.waitForFunction(() => /builder\s*processing/.test(document.querySelector('.agents')?.textContent ?? ''), undefined, { timeout: 1000 })
    expect((await post('/pause', { reason: 'waiting for review' })).status).toBe(200)
    await page.waitForFunction(() => document.querySelector('.session .paused')?.textContent?.includes('waiting for review') === true, undefined, { timeout: 1000 })
    await screenshot(page, 'inspector-runtime')
    // The dark theme follows the system.
    const background = (): Promise<string> => page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    const light = await background()
    await page.emulateMedia({ colorScheme: 'dark' })
    expect(await background()).not.toBe(light)
    await screenshot(page, 'inspector-dark')
    expect(errors).toEqual([])
  }, 60_000)

  it('asks for a token, keeps it for the tab, and shows a read token the admin actions disabled; the server refuses them too', async () => {
    const secret = 'inspector-test-secret-inspector-test'
    const srv = await start({ ui: { dir: uiDir }, auth: { secret } })
    const http = `http://127.0.0.1:${srv.port}`
    const admin = await mintToken({ secret, agentId: 'ops', scopes: ['admin:*'] })
    const reader = await mintToken({ secret, agentId: 'auditor', scopes: ['read:*'] })
    const auth = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })
    expect((await api(http, 'POST', '/v1/workflows', { body: { workflowId: 'audited', state: { n: 1 } }, headers: auth(admin) })).status).toBe(201)
    await api(http, 'PATCH', '/v1/workflows/audited', { raw: JSON.stringify([{ op: 'replace', path: '/n', value: 2 }]), headers: { ...auth(admin), 'content-type': 'application/json-patch+json' } })

    const { page, errors } = await openBrowser()
    await page.goto(`${http}/ui/w/audited/v/2`)
    await page.waitForSelector('.token-form')
    await page.fill('.token-form textarea', reader)
    await page.click('.token-form button[type=submit]')
    // The shared URL opens once the token is in: version 2 and its diff, over REST with the token.
    await page.waitForSelector('.version-view[data-to="2"] .diff tbody tr')
    expect(await page.evaluate(() => sessionStorage.getItem('accord-inspector-token'))).toBe(reader)
    const fork = await page.waitForSelector('button[data-action="fork at v2"]')
    expect(await fork.isDisabled()).toBe(true)
    expect(await page.textContent('.action:has(button[data-action="fork at v2"]) .refusal')).toContain('needs the admin right on audited; this token has read')
    expect(await page.isDisabled('button[data-action="restore v2"]')).toBe(true)
    await screenshot(page, 'inspector-read-token')
    // What the page disables, the server refuses.
    const refused = await api(http, 'POST', '/v1/workflows/audited/fork', { body: { version: 2 }, headers: auth(reader) })
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe('FORBIDDEN')
    // The list feed takes the token as a query parameter and filters by read right.
    await page.click('.brand')
    await page.waitForSelector('tr[data-id="audited"]')
    await page.waitForSelector('.live.on')
    await api(http, 'PATCH', '/v1/workflows/audited', { raw: JSON.stringify([{ op: 'replace', path: '/n', value: 3 }]), headers: { ...auth(admin), 'content-type': 'application/json-patch+json' } })
    await page.waitForFunction(() => document.querySelector('tr[data-id="audited"] .version')?.textContent === '3', undefined, { timeout: 1000 })
    // Without a token the feed is refused.
    expect((await api(http, 'GET', '/v1/watch/workflows')).status).toBe(401)
    expect(errors).toEqual([])
  }, 60_000)

  it('lists a real conflict and a real violation with their versions, and forks, promotes and discards from the page (admin; disabled with the reason for a reader)', async () => {
    const secret = 'inspector-test-secret-inspector-test'
    const srv = await start({ ui: { dir: uiDir }, auth: { secret } })
    const http = `http://127.0.0.1:${srv.port}`
    const token = (agentId: string, scopes: string[]): Promise<string> => mintToken({ secret, agentId, scopes })
    const admin = await token('ops', ['admin:*'])
    const reader = await token('auditor', ['read:*'])
    const auth = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })
    const a = sdkAgent(srv.url, 'contested', 'agent-a', { token: await token('agent-a', ['write:contested']) })
    const b = sdkAgent(srv.url, 'contested', 'agent-b', { token: await token('agent-b', ['write:contested']) })
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update(d => { d.task = { owner: 'nobody' }; d.tasks = []; d.config = { mode: 'safe' } }, { description: 'set up' })
    await waitFor(() => (b.state.task as { owner?: string } | undefined)?.owner === 'nobody')
    // A conflict: both agents write /task/owner while apart, then reconnect.
    a.provider.disconnect()
    b.provider.disconnect()
    a.update(d => { (d.task as { owner: string }).owner = 'agent-a' })
    b.update(d => { (d.task as { owner: string }).owner = 'agent-b' })
    a.provider.connect()
    b.provider.connect()
    const [conflict] = await waitFor(async () => { const c = await srv.server.conflicts('contested'); return c.length > 0 ? c : null }, { what: 'a conflict record' })
    expect(conflict!.writes.map(w => w.agent).sort()).toEqual(['agent-a', 'agent-b'])
    // A violation: a token scoped to /tasks/** writes /config/mode; the server reverts it and records it.
    const scoped = stockClient(srv.url, 'contested', { token: await token('tasker', ['write:contested:/tasks/**']) })
    await scoped.synced()
    ;(scoped.doc.getMap('state').get('config') as { set: (k: string, v: unknown) => void }).set('mode', 'yolo')
    const [violation] = await waitFor(async () => { const v = await srv.server.violations('contested'); return v.length > 0 ? v : null }, { what: 'a violation record' })
    expect(violation).toMatchObject({ kind: 'scope', agent: 'tasker', paths: ['/config/mode'], reverted: true })
    await Promise.all([a.close(), b.close()])

    const { page, errors } = await openBrowser()
    await page.goto(`${http}/ui/w/contested`)
    await page.fill('.token-form textarea', admin)
    await page.click('.token-form button[type=submit]')
    // Both lists name what happened and link to the version that recorded it.
    const conflictItem = await page.waitForSelector(`.conflicts li:has(a[href="/ui/w/contested/v/${conflict!.version}"])`)
    expect(await conflictItem.textContent()).toBe(`v${conflict!.version} /task/owner: ${conflict!.writes.map(w => w.agent).join(' vs ')}, kept ${conflict!.winner}`)
    const violationItem = await page.waitForSelector(`.violations li:has(a[href="/ui/w/contested/v/${violation!.version}"])`)
    expect(await violationItem.textContent()).toBe(`v${violation!.version} scope by tasker at /config/mode (reverted)`)
    await page.$eval('.violations', el => { el.scrollIntoView() })
    await screenshot(page, 'inspector-conflicts')
    await page.click(`.violations a[href="/ui/w/contested/v/${violation!.version}"]`)
    await page.waitForSelector(`.version-view[data-to="${violation!.version}"] .diff`)
    expect(pathOf(page)).toBe(`/ui/w/contested/v/${violation!.version}`)

    // Fork the live state from the page, change the fork, promote it from the page: the change reaches the parent, the fork is gone.
    const forkOf = async (): Promise<string> => {
      await page.waitForFunction(() => /^\/ui\/w\/contested\.fork-[0-9a-f]+$/.test(location.pathname))
      const forkId = decodeURIComponent(pathOf(page).split('/')[3] as string)
      await page.waitForFunction(() => document.querySelector('.wf-head')?.textContent?.includes('fork of contested') === true)
      return forkId
    }
    await page.click('.wf-head a')
    await page.click('button[data-action="fork"]')
    const first = await forkOf()
    const parentState = (await api(http, 'GET', '/v1/workflows/contested', { headers: auth(admin) })).body.state
    expect((await api(http, 'GET', `/v1/workflows/${first}`, { headers: auth(admin) })).body.state).toEqual(parentState)
    await api(http, 'PATCH', `/v1/workflows/${first}`, { raw: JSON.stringify([{ op: 'add', path: '/reviewed', value: true }]), headers: { ...auth(admin), 'content-type': 'application/json-patch+json' } })
    await page.click('button[data-action="promote"]')
    await page.waitForFunction(() => location.pathname === '/ui/w/contested')
    expect(await page.textContent('.notice')).toBe(`promoted ${first} into contested`)
    await waitFor(async () => (await api(http, 'GET', '/v1/workflows/contested', { headers: auth(admin) })).body.state.reviewed === true, { what: 'the promoted change in the parent' })
    expect((await api(http, 'GET', `/v1/workflows/${first}`, { headers: auth(admin) })).status).toBe(404)

    // Fork at a version; a read token sees promote and discard disabled with the reason, and the server refuses them.
    await page.click('.timeline .row[data-version="1"]')
    await page.click('button[data-action="fork at v1"]')
    const second = await forkOf()
    expect(await page.textContent('.wf-head')).toContain('fork of contested at v1')
    // The list names what each fork is a fork of.
    await page.click('.brand')
    expect(await page.textContent(`tr[data-id="${second}"] .fork-of`)).toBe('contested at v1')
    await page.click(`tr[data-id="${second}"] a`)
    await page.waitForSelector('button[data-action="discard"]')
    const signIn = async (t: string): Promise<void> => {
      await page.evaluate(value => { sessionStorage.setItem('accord-inspector-token', value) }, t)
      await page.reload()
    }
    await signIn(reader)
    for (const action of ['promote', 'discard']) {
      const button = await page.waitForSelector(`button[data-action="${action}"]`)
      expect(await button.isDisabled()).toBe(true)
      expect(await page.textContent(`.action:has(button[data-action="${action}"]) .refusal`)).toBe(`needs the admin right on ${second}; this token has read right there`)
    }
    for (const action of ['promote', 'discard']) {
      const refused = await api(http, 'POST', `/v1/workflows/${second}/${action}`, { body: {}, headers: auth(reader) })
      expect(refused.status).toBe(403)
    }
    // The admin discards it from the page: back to the list, the fork gone, the parent untouched.
    await signIn(admin)
    await page.click('button[data-action="discard"]')
    await page.waitForFunction(() => location.pathname === '/ui/')
    expect(await page.textContent('.notice')).toBe(`discarded ${second}`)
    await page.waitForSelector('tr[data-id="contested"]')
    expect(await page.$(`tr[data-id="${second}"]`)).toBeNull()
    expect((await api(http, 'GET', `/v1/workflows/${second}`, { headers: auth(admin) })).status).toBe(404)
    expect((await api(http, 'GET', '/v1/workflows/contested', { headers: auth(admin) })).body.state.reviewed).toBe(true)
    expect(errors).toEqual([])
  }, 60_000)

  it('feeds the list only with workflows the token may read', async () => {
    const secret = 'inspector-test-secret-inspector-test'
    const srv = await start({ ui: { dir: uiDir }, auth: { secret } })
    const http = `http://127.0.0.1:${srv.port}`
    const admin = await mintToken({ secret, agentId: 'ops', scopes: ['admin:*'] })
    const narrow = await mintToken({ secret, agentId: 'team-a', scopes: ['read:team-a-*'] })
    const feed = openSse(`${http}/v1/watch/workflows?token=${narrow}`)
    cleanups.push(async () => { feed.close() })
    expect(await feed.status).toBe(200)
    for (const id of ['team-b-plan', 'team-a-plan']) {
      expect((await api(http, 'POST', '/v1/workflows', { body: { workflowId: id, state: { v: 1 } }, headers: { authorization: `Bearer ${admin}` } })).status).toBe(201)
    }
    await waitFor(() => feed.events.length > 0, { what: 'a list event' })
    // team-b-plan was written first: had it been sent, it would have arrived first.
    expect(feed.events.map(e => JSON.parse(e.data).workflowId)).toEqual(['team-a-plan'])
    expect(JSON.parse(feed.events[0]!.data)).toMatchObject({ workflowId: 'team-a-plan', version: 1, author: 'ops' })
  })

  it('is not served when turned off', async () => {
    const srv = await start({ ui: false })
    const reply = await api(`http://127.0.0.1:${srv.port}`, 'GET', '/ui/')
    expect(reply.status).toBe(404)
  })
})
