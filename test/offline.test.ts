import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { headOf, useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { tempDir } from './helpers/server.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { kill, runChild } from './helpers/child.ts'
import type { JsonObject } from '../src/model/json.ts'

const { start, restart } = useServers()

// examples/offline-agent.ts runs as a child process; registered after useServers, so (hooks run
// in reverse order) it is killed before the servers stop and the temp dirs go.
const agents = new Set<ChildProcess>()
afterEach(async () => {
  await Promise.all(Array.from(agents).map(kill))
  agents.clear()
})
const runOfflineAgent = (args: string[]): { stdout: () => string, explain: () => string, exit: () => number | null | undefined } => {
  const root = path.resolve(import.meta.dirname, '..')
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'examples/offline-agent.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  agents.add(child)
  let out = ''
  let err = ''
  let exit: number | null | undefined
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  child.on('exit', code => { exit = code })
  return { stdout: () => out, explain: () => `--- stdout\n${out}\n--- stderr\n${err}`, exit: () => exit }
}

describe('offline Node agents', () => {
  it('start with the server down, edit, exit, start again and see their edits; sync both ways when it returns', async () => {
    const srv = await start()
    const seeded = sdkAgent(srv.url, 'wf-off', 'seed')
    await seeded.whenSynced()
    seeded.update(d => { d.fromServer = 'before the outage' })
    await waitFor(async () => (await srv.server.store.getMeta('wf-off'))?.head === 1)
    await seeded.close()

    // A first run while the server is up gets the server's state into the local store.
    const dirA = await tempDir()
    const first = sdkAgent(srv.url, 'wf-off', 'agent-a', { persistence: dirA })
    await first.whenSynced()
    await first.whenPersisted()
    await first.close()
    await srv.stop()

    // Offline: start, edit, exit, start again.
    const offline = sdkAgent(srv.url, 'wf-off', 'agent-a', { persistence: dirA, recovery: { baseMs: 20, capMs: 100 } })
    await offline.whenLoaded()
    expect(offline.state).toEqual({ fromServer: 'before the outage' })
    offline.update(d => { d.offlineA = 1 })
    await offline.close()
    const again = sdkAgent(srv.url, 'wf-off', 'agent-a', { persistence: dirA, recovery: { baseMs: 20, capMs: 100 } })
    await again.whenLoaded()
    expect(again.state).toEqual({ fromServer: 'before the outage', offlineA: 1 })
    again.update(d => { d.offlineA2 = 2 })

    // A second agent with its own store, also offline.
    const b = sdkAgent(srv.url, 'wf-off', 'agent-b', { persistence: await tempDir(), recovery: { baseMs: 20, capMs: 100 } })
    await b.whenLoaded()
    b.update(d => { d.offlineB = true })

    const back = await restart(srv)
    const online = sdkAgent(back.url, 'wf-off', 'online')
    await online.whenSynced()
    online.update(d => { d.whileTheyWereAway = 'server side' })
    const final = await waitForConvergence([() => again.state, () => b.state, () => online.state])
    expect(final).toEqual({ fromServer: 'before the outage', offlineA: 1, offlineA2: 2, offlineB: true, whileTheyWereAway: 'server side' })
  })

  it('an agent killed with SIGKILL after editing offline loses none of its edits on restart', async () => {
    const srv = await start()
    await srv.stop()
    const dir = await tempDir()
    const { child, first } = await runChild('test/fixtures/offline-writer.ts', [srv.url, 'wf-kill', 'doomed', dir, '25'])
    expect(first).toEqual({ persisted: 25 })
    await kill(child)

    const revived = sdkAgent(srv.url, 'wf-kill', 'doomed', { persistence: dir, recovery: { baseMs: 20, capMs: 100 } })
    await revived.whenLoaded()
    expect(Object.keys(revived.state)).toHaveLength(25)
    const back = await restart(srv)
    const reader = sdkAgent(back.url, 'wf-kill', 'reader')
    await waitFor(() => Object.keys(reader.state).length === 25, { what: 'the killed agent\'s edits reach the server' })
    expect(reader.state['doomed-24']).toBe(24)
  })
})

describe('examples/offline-agent.ts', () => {
  it('edits with the server down, finds its edits on the next run, and syncs them once the server is back', async () => {
    const srv = await start()
    const seed = sdkAgent(srv.url, 'wf-oa', 'seed')
    await seed.whenSynced()
    seed.update(d => { d['seed-1'] = { text: 'from the server', by: 'seed', done: false, at: 1 } })
    await waitFor(async () => (await headOf(srv, 'wf-oa')) === 1, { what: 'the seed note stored' })
    await seed.close()
    await srv.stop()
    const cache = await tempDir()
    const args = ['--url', srv.url, '--workflow', 'wf-oa', '--agent', 'scout', '--cache', cache]

    // Run 1, server down: two notes, stored locally, exit without waiting.
    const first = runOfflineAgent([...args, '--notes', '2', '--wait', '0'])
    await waitFor(() => first.exit() !== undefined, { what: `run 1 to exit\n${first.explain()}` })
    expect(first.exit(), first.explain()).toBe(0)
    expect(first.stdout()).toMatch(/^added \(.+\): scout: note 2 of 2 from run \w+$/m)
    expect(first.stdout()).toMatch(/^saved locally: 2 notes by scout in /m)
    expect(first.stdout()).toMatch(/^not waiting for the server \(--wait 0\)/m)

    // Run 2, server still down: finds run 1's notes, marks them done, adds one, waits.
    const second = runOfflineAgent([...args, '--notes', '1', '--wait', '30000'])
    await waitFor(() => /^server .* unreachable/m.test(second.stdout()) && /^waiting up to 30000 ms/m.test(second.stdout()),
      { what: `run 2 waiting for the server\n${second.explain()}` })
    expect(second.stdout()).toMatch(/^loaded wf-oa from .*: 2 notes, 2 of them by scout$/m)
    expect(second.stdout().match(/^marked done \(.+\): /gm)).toHaveLength(2)
    expect(second.stdout()).toMatch(/^saved locally: 3 notes by scout in /m)

    // The server comes back on the same port and data dir: run 2 syncs and exits.
    const back = await restart(srv)
    await waitFor(() => second.exit() !== undefined, { what: `run 2 to exit\n${second.explain()}` })
    expect(second.exit(), second.explain()).toBe(0)
    expect(second.stdout()).toMatch(/^synced with /m)
    expect(second.stdout()).toMatch(/^stored on the server as of version \d+$/m)
    expect(second.stdout()).toMatch(/^ {2}\[ \] from the server \(seed\)$/m)

    // Another agent gets the offline edits from the server.
    const other = sdkAgent(back.url, 'wf-oa', 'other')
    await other.whenSynced()
    const notes = Object.values(other.state) as JsonObject[]
    expect(notes.filter(n => n.by === 'scout').map(n => [n.text, n.done]).sort()).toEqual([
      [expect.stringMatching(/^scout: note 1 of 1 from run /), false],
      [expect.stringMatching(/^scout: note 1 of 2 from run /), true],
      [expect.stringMatching(/^scout: note 2 of 2 from run /), true]
    ])
    expect(other.state['seed-1']).toEqual({ text: 'from the server', by: 'seed', done: false, at: 1 })
  })
})
