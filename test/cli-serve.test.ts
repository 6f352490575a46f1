/**
 * `accord serve` as operators run it: TLS (wss:// with the Node SDK, https for the REST API and
 * `accord get`), settings from --config, the environment and flags (flags win), a schemas
 * module, and progress of long commands on a terminal but not when piped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, symlink, writeFile } from 'node:fs/promises'
import https from 'node:https'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WS from 'ws'
import { openWorkflow } from '../src/node/index.ts'
import { removeTempDirs, startServer, tempDir } from './helpers/server.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { runAccord } from './helpers/child.ts'
import { hasOpenssl, selfSignedCert } from './helpers/tls.ts'
import { sdkAgent, closeClients } from './helpers/clients.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const children: ChildProcess[] = []
const handles: Array<{ close: () => Promise<void> }> = []

afterEach(async () => {
  await Promise.all(handles.splice(0).map(h => h.close()))
  await closeClients()
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  await removeTempDirs()
})

/** Starts `accord serve`; resolves with its ready line's URL and its output so far. */
const serve = (args: string[], env: Record<string, string> = {}): Promise<{ url: string, line: string, child: ChildProcess, stdout: () => string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/accord.js'), 'serve', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    let err = ''
    const timer = setTimeout(() => { reject(new Error(`accord serve did not start: ${err}`)) }, 30_000)
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /accord serving on (wss?:\/\/\S+) .*\n/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve({ url: m[1] as string, line: m[0], child, stdout: () => out })
      }
    })
    child.on('exit', code => { clearTimeout(timer); reject(new Error(`accord serve exited with ${code}: ${err}`)) })
  })


describe('TLS', () => {
  it.skipIf(!hasOpenssl)('--tls-cert/--tls-key serve wss:// to the Node SDK and https:// to the API and accord get', async () => {
    const dir = await tempDir()
    const { cert, key, ca } = await selfSignedCert(dir)
    const server = await serve(['--port', '0', '--data', path.join(dir, 'data'), '--tls-cert', cert, '--tls-key', key, '--log-level', 'silent'])
    expect(server.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/)
    expect(server.line).toContain('tls on')

    // The SDK trusts the self-signed certificate through a WebSocket class that passes `ca`.
    class TrustingWebSocket extends WS {
      constructor (url: string, protocols?: string | string[]) { super(url, protocols, { ca }) }
    }
    const open = (agentId: string): ReturnType<typeof openWorkflow> => {
      const h = openWorkflow('tls-flow', { url: server.url, agentId, WebSocket: TrustingWebSocket as unknown as typeof globalThis.WebSocket })
      handles.push(h)
      return h
    }
    const a = open('a')
    const b = open('b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    a.update((d: Record<string, unknown>) => { d.secure = true })
    await waitForConvergence([() => a.state, () => b.state])
    expect(b.state).toEqual({ secure: true })

    const port = new URL(server.url).port
    const ready = await new Promise<number>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, path: '/readyz', ca }, res => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject)
    })
    expect(ready).toBe(200)
    // A client that does not trust the certificate is refused by TLS itself.
    await expect(fetch(`https://127.0.0.1:${port}/readyz`)).rejects.toThrow()

    const got = await new Promise<{ code: number | null, stdout: string, stderr: string }>(resolve => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin/accord.js'), 'get', 'tls-flow', '--server', server.url],
        { cwd: ROOT, env: { ...process.env, NODE_EXTRA_CA_CERTS: cert }, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
      child.on('close', code => { resolve({ code, stdout, stderr }) })
    })
    expect(got.stderr).toBe('')
    expect(got.code).toBe(0)
    expect(JSON.parse(got.stdout)).toEqual({ secure: true })
  })

  it('--tls-cert without --tls-key is a usage error', async () => {
    const run = await runAccord(['serve', '--tls-cert', 'cert.pem'])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('--tls-cert and --tls-key go together')
  })
})

describe('settings', () => {
  it('reads --config, then the environment, then flags (flags win), and loads a schemas module', async () => {
    const dir = await tempDir()
    const data = path.join(dir, 'from-config')
    // The module imports zod like an operator's would: give the temp dir the project's packages.
    await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'))
    const schemas = path.join(dir, 'schemas.mjs')
    await writeFile(schemas, "import { z } from 'zod'\nexport default { 'typed-flow': z.object({ count: z.number() }).partial() }\n")
    const config = path.join(dir, 'accord.json')
    await writeFile(config, JSON.stringify({ port: 1, data, 'log-level': 'silent', schemas, 'max-connections-per-workflow': 1 }))
    const server = await serve(['--config', config, '--port', '0'], { ACCORD_MAX_CONNECTIONS_PER_WORKFLOW: '2' })
    expect(server.line).toMatch(new RegExp(`store leveldb:${data}(,| in)`))
    const base = server.url.replace('ws:', 'http:')
    expect(new URL(base).port).not.toBe('1')

    // The environment's limit of 2 beat the config file's 1: two connections are served, a third is refused.
    const agents = [sdkAgent(server.url, 'typed-flow', 'a'), sdkAgent(server.url, 'typed-flow', 'b')]
    await Promise.all(agents.map(a => a.whenSynced()))
    const third = new WS(`${server.url}/typed-flow`)
    const closed = await new Promise<number>(resolve => { third.on('close', code => { resolve(code) }) })
    expect(closed).toBe(4503)

    // The schemas module applies: a write breaking it is refused.
    const ok = await fetch(`${base}/v1/workflows/typed-flow`, { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'add', path: '/count', value: 1 }]) })
    expect(ok.status).toBe(200)
    const bad = await fetch(`${base}/v1/workflows/typed-flow`, { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'replace', path: '/count', value: 'many' }]) })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('SCHEMA_VIOLATION')
    expect(existsSync(data)).toBe(true)
  })

  it('docs/configuration.md lists every setting with its variable and default', async () => {
    const { SERVE_SETTINGS } = await import('../server/ops/serve-settings.ts')
    const doc = await readFile(path.join(ROOT, 'docs/configuration.md'), 'utf8')
    for (const setting of SERVE_SETTINGS) {
      const row = doc.split('\n').find(line => line.startsWith(`| \`--${setting.flag}\``))
      expect(row, `a row for --${setting.flag}`).toBeDefined()
      expect(row).toContain(`\`${setting.env}\``)
      expect(row).toContain(setting.default === undefined ? '| unset |' : `| \`${String(setting.default)}\` |`)
    }
  })

  it('a schemas module exporting something else is refused before the store opens', async () => {
    const dir = await tempDir()
    const schemas = path.join(dir, 'schemas.mjs')
    await writeFile(schemas, 'export default 42\n')
    const run = await runAccord(['serve', '--port', '0', '--data', path.join(dir, 'data'), '--schemas', schemas])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain(`the schemas module ${schemas} must export`)
    expect(existsSync(path.join(dir, 'data'))).toBe(false)
  })
})

describe('progress of long commands', () => {
  const hasScript = spawnSync('script', ['--version']).status === 0

  it.skipIf(!hasScript)('verify shows workflows done / total on a terminal, and only its result when piped', async () => {
    const srv = await startServer()
    const a = sdkAgent(srv.url, 'progress-a', 'a')
    const b = sdkAgent(srv.url, 'progress-b', 'b')
    a.update(d => { d.n = 1 })
    b.update(d => { d.n = 2 })
    await waitFor(async () => (await srv.server.listWorkflows()).length === 2, { what: 'two stored workflows' })
    await closeClients()
    await srv.stop()

    const piped = await runAccord(['verify', '--data', srv.dataDir])
    expect(piped.code).toBe(0)
    expect(piped.stderr).toBe('')
    expect(piped.stdout).toBe('checked 2 workflows, 2 versions: no problems\n')

    // `script` gives the command a pseudo-terminal, as an operator's shell would.
    const cmd = `${process.execPath} ${path.join(ROOT, 'bin/accord.js')} verify --data ${srv.dataDir}`
    const tty = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 30_000 })
    expect(tty.status).toBe(0)
    expect(tty.stdout).toContain('verify: 2 / 2 workflows')
    expect(tty.stdout).toContain('checked 2 workflows, 2 versions: no problems')
  })
})
