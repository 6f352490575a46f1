/**
 * The scale-out commands of docs/deployment.md, run as written (in order, on one machine): two
 * `accord serve` on one PostgreSQL schema and one Redis prefix, then the two-agent example with
 * the planner on one server and the worker on the other. Only the ports (free ones instead of
 * 4001/4002), the schema and the prefix (unique per run) are changed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { dropServiceData, servicesMissing, uniqueName } from './helpers/services.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const missing = await servicesMissing()
if (missing !== null) console.warn(`skipping the scale-out commands: ${missing}`)
const children: ChildProcess[] = []

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
})

/** Splits one shell line of the doc into env assignments and argv (quotes removed). */
const words = (line: string): { env: Record<string, string>, argv: string[] } => {
  const parts = (line.match(/"[^"]*"|\S+/g) ?? []).map(w => w.replace(/^"|"$/g, ''))
  const env: Record<string, string> = {}
  while (parts.length > 0 && /^[A-Z_]+=/.test(parts[0] as string)) {
    const [k, ...v] = (parts.shift() as string).split('=')
    env[k as string] = v.join('=')
  }
  return { env, argv: parts }
}

const spawnLine = (argv: string[], env: Record<string, string>): { child: ChildProcess, out: () => string, err: () => string } => {
  // `npx accord` is this checkout's bin; `npx tsx` its tsx.
  const args = argv[0] === 'npx' && argv[1] === 'accord' ? [path.join(ROOT, 'bin/accord.js'), ...argv.slice(2)] : ['--import', 'tsx', ...argv.slice(2)]
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  return { child, out: () => out, err: () => err }
}

const until = (check: () => string | null, child: ChildProcess, what: string, ms = 60_000): Promise<string> => new Promise((resolve, reject) => {
  const timer = setTimeout(() => { clearInterval(poll); reject(new Error(`timed out waiting for ${what}`)) }, ms)
  const poll = setInterval(() => {
    const found = check()
    if (found !== null) { clearTimeout(timer); clearInterval(poll); resolve(found) }
  }, 20)
  child.once('exit', code => {
    setImmediate(() => {
      const found = check()
      clearTimeout(timer)
      clearInterval(poll)
      if (found !== null) resolve(found)
      else reject(new Error(`${what}: the process exited with ${code}`))
    })
  })
})

describe.skipIf(missing !== null)('docs/deployment.md scale-out commands', () => {
  it('two servers on one schema and bus; agents on different servers finish the example', async () => {
    const doc = await readFile(path.join(ROOT, 'docs/deployment.md'), 'utf8')
    const section = doc.slice(doc.indexOf('## Scale-out on one machine'))
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
    const lines = block.trim().split('\n')
    expect(lines).toHaveLength(3)
    const schema = uniqueName('deploy')
    const prefix = `${schema}:`
    const adapt = (line: string): string => line.replace(/--port \d+/, '--port 0').replaceAll('accord_demo', schema).replaceAll('accord-demo:', prefix)
    try {
      const urls: string[] = []
      for (const line of lines.slice(0, 2)) {
        const { env, argv } = words(adapt(line))
        const server = spawnLine([...argv, '--log-level', 'error'], env)
        urls.push(await until(() => /accord serving on (ws:\/\/\S+) /.exec(server.out())?.[1] ?? null, server.child, `server ${urls.length + 1} to be ready: ${server.err()}`))
      }
      expect(urls[0]).not.toBe(urls[1])
      const { env, argv } = words(lines[2] as string)
      expect(Object.keys(env)).toEqual(['ACCORD_URL', 'ACCORD_WORKER_URL'])
      const agents = spawnLine(argv, { ACCORD_URL: urls[0] as string, ACCORD_WORKER_URL: urls[1] as string })
      const code = await new Promise<number | null>(resolve => { agents.child.once('exit', resolve) })
      expect(code, agents.err()).toBe(0)
      expect(agents.out()).toContain('"ok":true')
    } finally {
      for (const child of children.splice(0)) child.kill('SIGTERM')
      await dropServiceData({ schema, redisPrefix: prefix })
    }
  }, 120_000)
})
