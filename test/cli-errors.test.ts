/**
 * Every `accord` command with a wrong argument, run as a real child process: a clear message
 * naming the path, flag or service, the right exit code (2 usage, 1 runtime), and nothing
 * created or changed on disk.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import net, { type AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { tempDir } from './helpers/server.ts'
import { sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { postgresProblem, POSTGRES_URL, uniqueName, dropServiceData } from './helpers/services.ts'
import { resolveSettings, SERVE_SETTINGS } from '../server/ops/serve-settings.ts'

const { start } = useServers()

/** A port nothing listens on (a free one, closed again). */
const closedPort = async (): Promise<number> => {
  const server = net.createServer()
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as AddressInfo).port
  await new Promise(resolve => server.close(resolve))
  return port
}
const ROOT = path.resolve(import.meta.dirname, '..')

/** Runs the CLI to completion with extra environment variables (and optionally as another user). */
const accord = (args: string[], { env = {}, uid }: { env?: Record<string, string>, uid?: number } = {}): Promise<{ code: number | null, stdout: string, stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/accord.js'), ...args], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...(uid === undefined ? {} : { uid, gid: uid })
    })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`accord ${args.join(' ')} timed out: ${stderr}`)) }, 30_000)
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', code => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })

describe('offline commands never create a store', () => {
  it('verify, rekey and restore-backup on a mistyped path: exit 1, "no Accord data at <path>", nothing created', async () => {
    const base = await tempDir()
    const missing = path.join(base, 'mistyped')
    const verify = await accord(['verify', '--data', missing])
    expect(verify.code).toBe(1)
    expect(verify.stderr).toContain(`no Accord data at ${missing}`)
    const rekey = await accord(['rekey', '--data', missing, '--decrypt'])
    expect(rekey.code).toBe(1)
    expect(rekey.stderr).toContain(`no Accord data at ${missing}`)
    expect(existsSync(missing)).toBe(false)

    const restore = await accord(['restore-backup', path.join(base, 'no-backup'), '--data', path.join(base, 'target')])
    expect(restore.code).toBe(1)
    expect(restore.stderr).toContain(`no Accord backup at ${path.join(base, 'no-backup')}`)
    expect(restore.stderr).not.toContain('CORRUPT_DATA')
    expect(await readdir(base)).toEqual([])
  })

  it('an empty directory or a file is not a store either, and stays as it was', async () => {
    const empty = await tempDir()
    const verify = await accord(['verify', '--data', empty])
    expect(verify.code).toBe(1)
    expect(verify.stderr).toContain(`no Accord data at ${empty}`)
    expect(await readdir(empty)).toEqual([])
    const file = path.join(empty, 'a-file')
    await writeFile(file, 'not a store')
    expect((await accord(['verify', '--data', file])).stderr).toContain(`no Accord data at ${file}`)
    // An empty directory is no backup: its missing manifest is "no backup", not corruption.
    const restore = await accord(['restore-backup', empty, '--data', path.join(empty, 'target')])
    expect(restore.code).toBe(1)
    expect(restore.stderr).toContain(`no Accord backup at ${empty}`)
  })

  it('backup from an unreachable server says which address and creates no directory', async () => {
    const dir = path.join(await tempDir(), 'bk')
    const port = await closedPort()
    const run = await accord(['backup', dir, '--server', `http://127.0.0.1:${port}`])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`cannot reach the Accord server at http://127.0.0.1:${port} (connection refused)`)
    expect(existsSync(dir)).toBe(false)
  })
})

describe('accord get', () => {
  it('an unknown workflow is exit 1 with a message; a known one prints its state', async () => {
    const srv = await start()
    const writer = sdkAgent(srv.url, 'known-flow', 'writer')
    writer.update(d => { d.done = true })
    await waitFor(async () => ((await srv.server.store.getMeta('known-flow'))?.head ?? 0) >= 1, { what: 'the write to be stored' })
    const unknown = await accord(['get', 'no-such-id', '--server', srv.url])
    expect(unknown.code).toBe(1)
    expect(unknown.stdout).toBe('')
    expect(unknown.stderr).toContain('no workflow no-such-id on http://127.0.0.1:')
    const known = await accord(['get', 'known-flow', '--server', srv.url])
    expect(known.code).toBe(0)
    expect(JSON.parse(known.stdout)).toEqual({ done: true })
  })

  it('a wrong id, timeout or missing server is a clear error', async () => {
    const bad = await accord(['get', '../etc'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('invalid workflow id')
    const timeout = await accord(['get', 'x', '--timeout', 'soon'])
    expect(timeout.code).toBe(2)
    expect(timeout.stderr).toContain('--timeout must be an integer')
    const port = await closedPort()
    const none = await accord(['get', 'x', '--server', `ws://127.0.0.1:${port}`])
    expect(none.code).toBe(1)
    expect(none.stderr).toContain(`cannot reach the Accord server at http://127.0.0.1:${port}`)
  })
})

describe('accord serve checks every setting before anything starts', () => {
  it('--port 99999 is exit 2 and opens no store', async () => {
    const data = path.join(await tempDir(), 'data')
    const run = await accord(['serve', '--port', '99999', '--data', data])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('--port must be an integer from 0 to 65535, got "99999"')
    expect(existsSync(data)).toBe(false)
  })

  it('every numeric setting refuses a non-number, a negative, a fraction and an unsafe integer', async () => {
    const numeric = SERVE_SETTINGS.filter(s => s.kind === 'int' || s.kind === 'port')
    expect(numeric.length).toBeGreaterThan(20)
    for (const setting of numeric) {
      for (const value of ['abc', '-1', '1.5', '99999999999999999999', '']) {
        await expect(resolveSettings({ [setting.flag]: value }, {}), `--${setting.flag} ${value}`)
          .rejects.toMatchObject({ name: 'UsageError', exitCode: 2, message: expect.stringContaining(`--${setting.flag} must be an integer`) })
      }
      await expect(resolveSettings({}, { [setting.env]: 'abc' })).rejects.toMatchObject({ message: expect.stringContaining(`${setting.env} must be an integer`) })
    }
    // And through the command itself, for a setting read after the store would open.
    const data = path.join(await tempDir(), 'data')
    const run = await accord(['serve', '--data', data, '--forward-timeout-ms=-5'])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('--forward-timeout-ms must be an integer from 1')
    expect(existsSync(data)).toBe(false)
  })

  it('the same checks apply to environment variables and the config file', async () => {
    const dir = await tempDir()
    const data = path.join(dir, 'data')
    const env = await accord(['serve', '--data', data], { env: { ACCORD_PORT: '70000' } })
    expect(env.code).toBe(2)
    expect(env.stderr).toContain('ACCORD_PORT must be an integer from 0 to 65535')
    const config = path.join(dir, 'accord.json')
    await writeFile(config, JSON.stringify({ 'max-workflows': 0 }))
    const file = await accord(['serve', '--data', data, '--config', config])
    expect(file.code).toBe(2)
    expect(file.stderr).toContain(`"max-workflows" in ${config} must be an integer from 1`)
    await writeFile(config, JSON.stringify({ maxWorkflows: 5 }))
    const unknown = await accord(['serve', '--data', data, '--config', config])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('unknown setting "maxWorkflows"')
    const missing = await accord(['serve', '--config', path.join(dir, 'nope.json')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('cannot read the config file')
    expect(existsSync(data)).toBe(false)
  })
})

describe('accord serve names each store fault', () => {
  it('a store another process holds: "another accord serve is using <path>"', async () => {
    const srv = await start()
    const run = await accord(['serve', '--port', '0', '--data', srv.dataDir])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`another accord serve is using ${srv.dataDir}`)
    expect(run.stderr).not.toContain('Database failed to open')
  })

  it('a path that is a file', async () => {
    const file = path.join(await tempDir(), 'data')
    await writeFile(file, 'x')
    const run = await accord(['serve', '--port', '0', '--data', file])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`${file} is a file, not a data directory`)
  })

  it('a directory the user cannot write', async () => {
    const parent = path.join(await tempDir(), 'readonly')
    await mkdir(parent)
    await chmod(parent, 0o555)
    const data = path.join(parent, 'data')
    // root writes anywhere: run the child as nobody when the test runs as root.
    const asRoot = process.getuid?.() === 0
    const run = await accord(['serve', '--port', '0', '--data', data], asRoot ? { uid: 65534 } : {})
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`cannot write to ${data} (permission denied)`)
  })
})

describe('accord serve names each PostgreSQL and Redis fault', async () => {
  const pgProblem = await postgresProblem()
  if (pgProblem !== null) console.warn(`skipping the PostgreSQL fault cases that need a server: ${pgProblem}`)

  it('PostgreSQL unreachable', async () => {
    const run = await accord(['serve', '--port', '0', '--store', 'postgres://accord:secret@127.0.0.1:9/accord'])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('cannot reach PostgreSQL at postgres://accord:***@127.0.0.1:9/accord (connection refused)')
    expect(run.stderr).not.toContain('secret')
  })

  it.skipIf(pgProblem !== null)('PostgreSQL: a missing database, a refused login', async () => {
    const url = new URL(POSTGRES_URL)
    url.pathname = '/no_such_database_here'
    const db = await accord(['serve', '--port', '0', '--store', url.toString()])
    expect(db.code).toBe(1)
    expect(db.stderr).toContain('database "no_such_database_here" does not exist: create it first')
    const login = new URL(POSTGRES_URL)
    login.username = 'no_such_role_here'
    const auth = await accord(['serve', '--port', '0', '--store', login.toString()])
    expect(auth.code).toBe(1)
    expect(auth.stderr).toContain('refused the login')
  })

  it.skipIf(pgProblem !== null)('Redis unreachable', async () => {
    const schema = uniqueName('cli_redis')
    const url = new URL(POSTGRES_URL)
    url.searchParams.set('schema', schema)
    try {
      const run = await accord(['serve', '--port', '0', '--store', url.toString(), '--bus', 'redis://127.0.0.1:9', '--log-level', 'silent'])
      expect(run.code).toBe(1)
      expect(run.stderr).toContain('cannot reach Redis at redis://127.0.0.1:9')
    } finally {
      await dropServiceData({ schema })
    }
  })
})
