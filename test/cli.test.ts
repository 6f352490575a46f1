/**
 * The `accord` command line, run as a real child process: `node bin/accord.js ...`.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import os from 'node:os'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { removeTempDirs, tempDir } from './helpers/server.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { waitForConvergence } from './helpers/wait.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const TIMEOUT_MS = 20_000

interface Running {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Resolves with the exit code (or the signal name) once the process exited. */
  exited: Promise<number | string>
}

const children: ChildProcess[] = []

const start = (args: string[]): Running => {
  const child = spawn(process.execPath, ['bin/accord.js', ...args], { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const exited = new Promise<number | string>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => { resolve(code ?? signal ?? 'unknown') })
  })
  return { child, stdout: () => out, stderr: () => err, exited }
}

/** Rejects after `ms` with a message naming what was awaited and what the child printed. */
const within = async <T>(promise: Promise<T>, what: string, run: Running, ms = TIMEOUT_MS): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms waiting for ${what}\nstdout: ${run.stdout()}\nstderr: ${run.stderr()}`))
    }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Runs the CLI to completion. */
const run = async (args: string[]): Promise<{ code: number | string, stdout: string, stderr: string }> => {
  const r = start(args)
  const code = await within(r.exited, `accord ${args.join(' ')} to exit`, r)
  return { code, stdout: r.stdout(), stderr: r.stderr() }
}

/** Resolves with the first match of `pattern` on the child's stdout. */
const waitForOutput = (r: Running, pattern: RegExp): Promise<RegExpMatchArray> => {
  const found = new Promise<RegExpMatchArray>((resolve, reject) => {
    const check = (): void => {
      const m = r.stdout().match(pattern)
      if (m !== null) {
        r.child.stdout?.off('data', check)
        resolve(m)
      }
    }
    r.child.stdout?.on('data', check)
    void r.exited.then(code => { reject(new Error(`exited with ${code} before printing ${pattern}\nstderr: ${r.stderr()}`)) })
    check()
  })
  return within(found, `stdout to match ${pattern}`, r)
}

afterEach(async () => {
  await closeClients()
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})

afterAll(async () => {
  await removeTempDirs()
})

describe('accord CLI', () => {
  it('--help exits 0 and prints usage', async () => {
    const { code, stdout } = await run(['--help'])
    expect(code).toBe(0)
    expect(stdout).toMatch(/^Usage: accord <command>/)
    expect(stdout).toContain('serve')
    expect(stdout).toContain('get <workflowId>')
  })

  it('an unknown option exits 2 with a usage message', async () => {
    const { code, stderr, stdout } = await run(['serve', '--bogus'])
    expect(code).toBe(2)
    expect(stderr).toMatch(/--bogus/)
    expect(stderr).toContain('accord --help')
    expect(stdout).toBe('')
  })

  it('an unknown command exits 2 with a usage message', async () => {
    const { code, stderr } = await run(['frobnicate'])
    expect(code).toBe(2)
    expect(stderr).toContain('unknown command frobnicate')
    expect(stderr).toContain('accord --help')
  })

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
    const { code, stdout } = await run(['--version'])
    expect(code).toBe(0)
    expect(stdout).toBe(`accord ${pkg.version}\n`)
  })

  it('serve prints its URL (one worker per core on a new directory), get prints a workflow\'s JSON, SIGTERM stops the server with exit 0', async () => {
    const data = await tempDir('accord-cli-')
    const server = start(['serve', '--port', '0', '--data', data, '--log-level', 'silent'])
    const [, url, port] = await waitForOutput(server, /accord serving on (ws:\/\/127\.0\.0\.1:(\d+)) \(store leveldb:(.+), bus none, auth off, tls off(?:, workers \d+)?\)\n/)
    expect(Number(port)).toBeGreaterThan(0)
    const cores = os.availableParallelism()
    expect(server.stdout()).toContain(cores > 1 ? `store leveldb:${data} in ${cores} shards, bus none, auth off, tls off, workers ${cores})` : `store leveldb:${data}, bus none, auth off, tls off)`)

    // An SDK agent writes; a second one converging proves the server holds the edit.
    const writer = sdkAgent(url as string, 'cli-flow', 'writer')
    const reader = sdkAgent(url as string, 'cli-flow', 'reader')
    await Promise.all([writer.whenSynced(), reader.whenSynced()])
    writer.update(d => {
      d.tasks = [{ id: 1, title: 'plan', status: 'done' }, { id: 2, title: 'build', status: 'todo' }]
      d.owner = 'writer'
    })
    const expected = await waitForConvergence([() => writer.state, () => reader.state])
    expect(expected).toMatchObject({ owner: 'writer' })

    const got = await run(['get', 'cli-flow', '--server', url as string, '--timeout', '10000'])
    expect(got.stderr).toBe('')
    expect(got.code).toBe(0)
    expect(JSON.parse(got.stdout)).toEqual(expected)

    await closeClients()
    server.child.kill('SIGTERM')
    expect(await within(server.exited, 'the server to exit after SIGTERM', server)).toBe(0)
    expect(server.stdout()).toMatch(cores > 1 ? new RegExp(`accord stopped cleanly: 1 workflows flushed, ${cores} workers stopped, store closed\n$`) : /accord stopped cleanly: 1 workflows flushed, store closed\n$/)
  })
})
