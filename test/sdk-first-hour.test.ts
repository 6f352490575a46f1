/**
 * The SDK as a new user meets it: the README's schema with `.default([])`, an agent that names
 * no agentId, and one process with more than 10 workflows open.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { openWorkflow } from '../src/node/index.ts'

const { start } = useServers()
const root = path.resolve(import.meta.dirname, '..')

const schema = z.object({
  tasks: z.array(z.object({ title: z.string(), status: z.enum(['todo', 'doing', 'done']) })).default([])
})

describe('zod defaults in the SDK state', () => {
  it('the README sample: draft.tasks is the default [] in update(), and state shows it before anything is written', async () => {
    const srv = await start()
    const wf = sdkAgent(srv.url, 'release-42', 'planner', { schema })
    await wf.whenSynced()
    expect(wf.state).toEqual({ tasks: [] })
    wf.update(draft => { draft.tasks.push({ title: 'write notes', status: 'todo' }) }, { description: 'plan the release' })
    wf.patch([{ op: 'replace', path: '/tasks/0/status', value: 'doing' }])
    expect(wf.state).toEqual({ tasks: [{ title: 'write notes', status: 'doing' }] })
    const other = sdkAgent(srv.url, 'release-42', 'observer')
    await waitForConvergence([() => wf.state, () => other.state])
    expect(other.state).toEqual({ tasks: [{ title: 'write notes', status: 'doing' }] })
    const records = await srv.server.history('release-42')
    expect(records.length).toBeGreaterThan(0)
    for (const record of records) expect(record.author).toBe('planner')
  })

  it('patch ops addressing a default not stored yet work, and a no-op update writes nothing', async () => {
    const srv = await start()
    const wf = sdkAgent(srv.url, 'wf-defaults', 'a', { schema: z.object({ tasks: z.array(z.string()).default([]), title: z.string().default('untitled') }) })
    await wf.whenSynced()
    expect(wf.state).toEqual({ tasks: [], title: 'untitled' })
    wf.update(() => {})
    expect(await srv.server.history('wf-defaults')).toEqual([])
    wf.patch([{ op: 'add', path: '/tasks/-', value: 'first' }])
    expect(wf.state).toEqual({ tasks: ['first'], title: 'untitled' })
    await waitFor(async () => (await srv.server.history('wf-defaults')).length === 1, { what: 'the patch stored' })
    // Without the schema the stored state shows the defaults were written with the first change.
    const plain = sdkAgent(srv.url, 'wf-defaults', 'b')
    await plain.whenSynced()
    await waitFor(() => (plain.state as { tasks?: unknown }).tasks !== undefined)
    expect(plain.state).toEqual({ tasks: ['first'], title: 'untitled' })
    // Keys the schema does not name stay visible (z.object would strip them), in sorted order.
    plain.update(d => { d.extra = 'kept' })
    await waitFor(() => (wf.state as { extra?: string }).extra === 'kept', { what: 'the unknown key' })
    expect(Object.keys(wf.state)).toEqual(['extra', 'tasks', 'title'])
    // A state the schema rejects is shown as stored, and updates are still checked.
    plain.update(d => { d.title = 42 })
    await waitFor(() => (wf.state as { title: unknown }).title === 42, { what: 'the invalid remote value' })
    expect(() => wf.update(d => { d.tasks.push('x') })).toThrow(expect.objectContaining({ code: 'SCHEMA_VIOLATION' }))
  })
})

describe('agent id', () => {
  it('a missing agentId becomes anonymous-<client id>, recorded as the author (never "undefined")', async () => {
    const srv = await start()
    const wf = openWorkflow('wf-anon', { url: srv.url })
    try {
      expect(wf.agentId).toBe(`anonymous-${wf.doc.clientID}`)
      await wf.whenSynced()
      const seen: string[] = []
      const watcher = sdkAgent(srv.url, 'wf-anon', 'watcher')
      await watcher.whenSynced()
      watcher.subscribe(change => { seen.push(change.author) })
      wf.update(d => { d.hello = 'world' })
      await waitFor(() => seen.length === 1, { what: 'the remote change' })
      expect(seen).toEqual([wf.agentId])
      await waitFor(async () => (await srv.server.history('wf-anon')).length === 1)
      const [record] = await srv.server.history('wf-anon')
      expect(record?.author).toBe(wf.agentId)
      expect(JSON.stringify(record)).not.toContain('undefined')
    } finally {
      await wf.close()
    }
  })
})

describe('many workflows in one process', () => {
  it('an agent with 12 workflows open gets no MaxListenersExceededWarning, and close leaves the process listeners as they were', async () => {
    const srv = await start()
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/fixtures/many-workflows.ts'), srv.url, '12'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const code = await new Promise<number | null>(resolve => { child.on('exit', resolve) })
    expect(code, err).toBe(0)
    expect(err).not.toMatch(/MaxListenersExceeded|Warning/)
    const { before, open, after } = JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, Record<string, number>>
    expect(after).toEqual(before)
    // While open: no listener per workflow on the process.
    for (const [event, n] of Object.entries(open ?? {})) expect(n - (before?.[event] ?? 0), event).toBeLessThan(2)
  }, 60_000)
})
