/**
 * The HTTP examples under examples/http, run as their users would run them: real child processes
 * (python3, bash + curl, node) against a real server on an ephemeral port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { headOf, useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { api } from './helpers/http.ts'
import { historyOverHttp } from './helpers/history.ts'
import type { TestServer } from './helpers/server.ts'
import type { VersionRecord } from '../src/node/index.ts'

const { start, restart } = useServers()
const root = path.resolve(import.meta.dirname, '..')
const AGENT_PY = path.join(root, 'examples/http/agent.py')
const CURL_SESSION = path.join(root, 'examples/http/curl-session.sh')
const NODE_AGENT = path.join(root, 'examples/http/node-agent.ts')

const installed = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 }).status === 0
const hasPython = installed('python3', ['--version'])
const hasCurl = installed('curl', ['--version']) && installed('bash', ['--version'])
if (!hasPython) console.log('examples.test.ts: skipping the agent.py tests: python3 is not installed')
if (!hasCurl) console.log('examples.test.ts: skipping the curl session test: curl (or bash) is not installed')

const base = (srv: TestServer): string => `http://127.0.0.1:${srv.port}`

interface Proc {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Set once the process exited (or could not start). */
  result: () => { code: number | null, signal: NodeJS.Signals | null, error?: Error } | undefined
  /** Both streams, for assertion messages. */
  explain: () => string
}

const procs = new Set<ChildProcess>()

/** Spawns a child in its own process group (so its own children die with it), bounded by timeoutMs. */
const run = (cmd: string, args: string[], { env = {}, timeoutMs }: { env?: Record<string, string>, timeoutMs: number }): Proc => {
  const child = spawn(cmd, args, {
    cwd: root,
    env: { ...process.env, PYTHONUNBUFFERED: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    timeout: timeoutMs,
    killSignal: 'SIGKILL'
  })
  procs.add(child)
  let out = ''
  let err = ''
  let result: ReturnType<Proc['result']>
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  child.on('error', error => { result ??= { code: null, signal: null, error } })
  child.on('exit', (code, signal) => { result = { code, signal } })
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    result: () => result,
    explain: () => `--- stdout\n${out}\n--- stderr\n${err}`
  }
}

const exited = (p: Proc, timeoutMs: number, what: string): Promise<NonNullable<ReturnType<Proc['result']>>> =>
  waitFor(() => p.result(), { timeoutMs, intervalMs: 25, what: `${what} to exit\n${p.explain()}` })

afterEach(async () => {
  await Promise.all(Array.from(procs).map(child => new Promise<void>(resolve => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      resolve()
      return
    }
    child.once('exit', () => { resolve() })
    try {
      process.kill(-child.pid, 'SIGKILL') // the child's process group: the child and what it spawned
    } catch {
      child.kill('SIGKILL')
    }
  })))
  procs.clear()
})

/** agent.py's lines `change v=N author=A description="..." ops=[...]`. */
const changeLines = (stdout: string): Array<{ version: number, author: string, description: string, ops: unknown }> =>
  stdout.split('\n').flatMap(line => {
    const m = /^change v=(\d+) author=(\S+) description=(".*?(?<!\\)") ops=(\[.*\])$/.exec(line)
    return m === null ? [] : [{ version: Number(m[1]), author: m[2] as string, description: JSON.parse(m[3] as string) as string, ops: JSON.parse(m[4] as string) }]
  })

const patchedVersion = (stdout: string): number | undefined => {
  const m = /^patched \S+: version (\d+)/m.exec(stdout)
  return m === null ? undefined : Number(m[1])
}

const historyOf = (srv: TestServer, id: string): Promise<VersionRecord[]> => historyOverHttp(base(srv), id)

describe('examples/http/agent.py', () => {
  it.skipIf(!hasPython)('creates the workflow, lands its patch, and prints 3 change records of a Node agent editing meanwhile', async () => {
    const srv = await start()
    const py = run('python3', [AGENT_PY, '--url', base(srv), '--workflow', 'wf-py', '--agent', 'py-agent', '--note', 'from python', '--max-events', '3', '--timeout', '30'], { timeoutMs: 40_000 })

    // Once its patch landed, a Node SDK agent edits the workflow over Yjs; agent.py follows the
    // change stream from its own version, so none of these edits can be missed.
    const patched = await waitFor(() => patchedVersion(py.stdout()) ?? py.result()?.code, { what: `agent.py patched\n${py.explain()}` })
    expect(py.result(), py.explain()).toBeUndefined()
    const node = sdkAgent(srv.url, 'wf-py', 'node-agent')
    await node.whenSynced()
    expect(node.state).toEqual({ notes: ['from python'] })
    for (let i = 1; i <= 3; i++) {
      const before = await headOf(srv, 'wf-py')
      node.update(d => { d.progress = i }, { description: `node edit #${i}` })
      await waitFor(async () => (await headOf(srv, 'wf-py')) > before, { what: `node edit #${i} stored` })
    }

    const { code } = await exited(py, 30_000, 'agent.py')
    expect(code, py.explain()).toBe(0)
    expect(py.stdout()).toMatch(/^created workflow wf-py at version 1$/m)
    expect(py.stdout()).toMatch(/^read wf-py: version 1, ETag "1", state \{"notes": \[\]\}$/m)

    // The Python agent's own patch landed: it is in the state and in the history, authored by it.
    const state = await api(base(srv), 'GET', '/v1/workflows/wf-py')
    expect(state.body).toMatchObject({ version: patched + 3, state: { notes: ['from python'], progress: 3 } })
    const history = await historyOf(srv, 'wf-py')
    const own = history.find(r => r.version === patched)
    expect(own).toMatchObject({ author: 'py-agent', description: 'py-agent added a note', changes: [{ op: 'add', path: '/notes/0', value: 'from python' }] })

    // Exactly 3 change lines: the Node agent's edits, as the server recorded them.
    const lines = changeLines(py.stdout())
    expect(lines, py.explain()).toHaveLength(3)
    expect(lines.map(l => l.version)).toEqual([patched + 1, patched + 2, patched + 3])
    expect(lines.map(l => l.description)).toEqual(['node edit #1', 'node edit #2', 'node edit #3'])
    for (const line of lines) {
      const record = history.find(r => r.version === line.version)
      expect(line).toEqual({ version: record?.version, author: 'node-agent', description: record?.description, ops: record?.changes })
    }
  })

  it.skipIf(!hasPython)('reconnects with Last-Event-ID after the server restarts: every change once, in order', async () => {
    const srv = await start()
    const b = base(srv)
    await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-drop', state: { notes: ['seed'] } } })
    const py = run('python3', [AGENT_PY, '--url', b, '--workflow', 'wf-drop', '--agent', 'py-agent', '--max-events', '4', '--timeout', '45'], { timeoutMs: 55_000 })
    const patched = await waitFor(() => patchedVersion(py.stdout()), { what: `agent.py patched\n${py.explain()}` })

    const edit = async (port: number, n: number): Promise<void> => {
      const r = await api(`http://127.0.0.1:${port}`, 'PATCH', '/v1/workflows/wf-drop', {
        raw: JSON.stringify([{ op: 'add', path: '/n', value: n }]),
        headers: { 'content-type': 'application/json-patch+json', 'x-accord-agent': 'http-writer', 'x-accord-description': encodeURIComponent(`edit ${n}`) }
      })
      expect(r.status).toBe(200)
    }
    await edit(srv.port, 1)
    await edit(srv.port, 2)
    await waitFor(() => changeLines(py.stdout()).length === 2, { what: `2 change lines before the restart\n${py.explain()}` })

    // The restart ends every open stream; these two edits are made while agent.py is reconnecting.
    await srv.stop()
    const again = await restart(srv)
    await edit(again.port, 3)
    await edit(again.port, 4)

    const { code } = await exited(py, 40_000, 'agent.py')
    expect(code, py.explain()).toBe(0)
    const lines = changeLines(py.stdout())
    expect(lines.map(l => l.version)).toEqual([patched + 1, patched + 2, patched + 3, patched + 4])
    expect(lines.map(l => l.description)).toEqual(['edit 1', 'edit 2', 'edit 3', 'edit 4'])
    expect(py.stderr()).toMatch(/reconnecting/)
    expect(py.stdout()).toMatch(new RegExp(`^following wf-drop after version ${patched + 2}$`, 'm'))
  })

  it.skipIf(!hasPython)('prints the error code and message of an HTTP error and exits 1', async () => {
    const srv = await start()
    const py = run('python3', [AGENT_PY, '--url', base(srv), '--workflow', 'bad!id', '--timeout', '20'], { timeoutMs: 30_000 })
    const { code } = await exited(py, 25_000, 'agent.py')
    expect(code, py.explain()).toBe(1)
    expect(py.stderr()).toMatch(/^error: HTTP 400 INVALID_WORKFLOW_ID: invalid workflow id "bad!id"/m)
  })

  it.skipIf(!hasPython)('follows the changes of examples/http/node-agent.ts, which exits once its edits are stored', async () => {
    const srv = await start()
    const py = run('python3', [AGENT_PY, '--url', base(srv), '--workflow', 'wf-both', '--agent', 'py-agent', '--max-events', '3', '--timeout', '40'], { timeoutMs: 50_000 })
    const patched = await waitFor(() => patchedVersion(py.stdout()), { what: `agent.py patched\n${py.explain()}` })
    const node = run(process.execPath, ['--import', 'tsx', NODE_AGENT, '--url', srv.url, '--workflow', 'wf-both', '--agent', 'node-agent', '--edits', '3', '--timeout', '30000'], { timeoutMs: 40_000 })

    expect((await exited(node, 35_000, 'node-agent.ts')).code, node.explain()).toBe(0)
    expect(node.stdout()).toMatch(/^stored v\d+: node-agent edit 3 of 3$/m)
    expect((await exited(py, 35_000, 'agent.py')).code, py.explain()).toBe(0)
    const lines = changeLines(py.stdout())
    expect(lines.map(l => [l.version, l.author, l.description])).toEqual([1, 2, 3].map(i => [patched + i, 'node-agent', `node-agent edit ${i} of 3`]))
    expect((await api(base(srv), 'GET', '/v1/workflows/wf-both')).body.state).toEqual({
      notes: ['hello from py-agent', 'node-agent: edit 1 of 3', 'node-agent: edit 2 of 3', 'node-agent: edit 3 of 3'],
      progress: { 'node-agent': 3 }
    })
  })
})

describe('examples/http/curl-session.sh', () => {
  it.skipIf(!hasCurl)('runs to completion: create, ETag, If-Match, 412, history, change stream, old version', async () => {
    const srv = await start()
    const sh = run('bash', [CURL_SESSION], { env: { ACCORD_URL: base(srv), ACCORD_WORKFLOW: 'wf-curl' }, timeoutMs: 30_000 })
    const { code } = await exited(sh, 25_000, 'curl-session.sh')
    expect(code, sh.explain()).toBe(0)
    const out = sh.stdout()
    expect(out).toMatch(/^ETag: "1"$/m)
    expect(out).toMatch(/^< HTTP 412$/m)
    expect(out).toContain('PRECONDITION_FAILED')
    expect(out).toMatch(/^--- stream \(curl exit code 28;/m)
    expect(out).toMatch(/^--- 2 change events$/m)
    expect(out).toMatch(/^done: workflow wf-curl$/m)

    const history = await historyOf(srv, 'wf-curl')
    expect(history.map(r => [r.version, r.author, r.description])).toEqual([
      [4, 'curl-user', 'second live note'],
      [3, 'curl-user', 'first live note'],
      [2, 'curl-user', 'start review & add a note'],
      [1, 'curl-user', 'created over HTTP']
    ])
    expect((await api(base(srv), 'GET', '/v1/workflows/wf-curl')).body.state).toEqual({ status: 'review', notes: ['looks good', 'first live note', 'second live note'] })
  })
})
