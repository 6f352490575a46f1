/**
 * The Dockerfile and compose.yaml: where a Docker daemon is available, the image is built, both
 * compose setups started (one server on LevelDB; PostgreSQL + Redis + two servers behind nginx)
 * and the two-agent example (examples/compose/two-agents.ts) run against each. Without a daemon
 * those cases are skipped with the reason printed; the files' own checks always run.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { waitFor } from './helpers/wait.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
const compose = readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8')

const dockerProblem = (): string | null => {
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 20_000 })
  if (info.error !== undefined) return `docker is not installed (${info.error.message})`
  if (info.status !== 0) return `no Docker daemon: ${(info.stderr || info.stdout).trim().split('\n')[0] ?? ''}`
  return null
}
const problem = dockerProblem()
if (problem !== null) console.warn(`skipping the Docker image and compose runs: ${problem}`)

describe('Dockerfile and compose.yaml, as files', () => {
  it('every COPY source exists, the image runs as node with a /data volume and a /readyz health check', () => {
    const copies = dockerfile.split('\n').filter(l => /^COPY (?!--from)/.test(l))
    expect(copies.length).toBeGreaterThan(3)
    for (const line of copies) {
      const sources = line.replace(/^COPY /, '').trim().split(/\s+/).slice(0, -1)
      for (const source of sources) expect(existsSync(path.join(ROOT, source)), `COPY source ${source}`).toBe(true)
    }
    expect(dockerfile).toMatch(/^FROM node:20-slim AS build$/m)
    expect(dockerfile).toMatch(/RUN npm ci --ignore-scripts\n/)
    expect(dockerfile).toMatch(/RUN npm run build/)
    expect(dockerfile).toMatch(/npm ci --omit=dev/)
    expect(dockerfile).toMatch(/^USER node$/m)
    expect(dockerfile).toMatch(/^VOLUME \/data$/m)
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n.*fetch\(.*\/readyz/m)
    // The entry point runs what the build produced.
    expect(existsSync(path.join(ROOT, 'bin/accord.js'))).toBe(true)
    expect(readFileSync(path.join(ROOT, 'bin/accord.js'), 'utf8')).toContain('../dist/server/ops/cli.js')
  })

  it('compose names only files that exist and settings accord serve knows', async () => {
    const { SERVE_SETTINGS } = await import('../server/ops/serve-settings.ts')
    const known = new Set(SERVE_SETTINGS.map(s => s.env))
    const used = [...compose.matchAll(/^\s+(ACCORD_[A-Z_]+):/gm), ...dockerfile.matchAll(/(ACCORD_[A-Z_]+)=/g)].map(m => m[1] as string)
    expect(used.length).toBeGreaterThan(4)
    for (const env of used) expect(known.has(env), env).toBe(true)
    for (const m of compose.matchAll(/- \.\/(\S+?):/g)) expect(existsSync(path.join(ROOT, m[1] as string)), m[1]).toBe(true)
  })
})

const run = (args: string[], env: Record<string, string> = {}, timeout = 600_000): { status: number | null, out: string } => {
  const r = spawnSync(args[0] as string, args.slice(1), { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout })
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` }
}

describe.skipIf(problem !== null)('the image and compose, with Docker', () => {
  const secret = randomBytes(32).toString('hex')
  const project = `accordtest${randomBytes(3).toString('hex')}`
  const env = { ACCORD_AUTH_SECRET: secret, ACCORD_HOST_PORT: '21234', ACCORD_CLUSTER_PORT: '28080', COMPOSE_PROJECT_NAME: project }

  const agents = (url: string): void => {
    const r = run([process.execPath, '--import', 'tsx', 'examples/compose/two-agents.ts'], { ACCORD_URL: url, ACCORD_AUTH_SECRET: secret }, 60_000)
    expect(r.status, r.out).toBe(0)
    expect(r.out).toContain('"ok":true')
  }
  const ready = async (port: string): Promise<void> => {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok === true, { what: `readyz on ${port}`, timeoutMs: 120_000 })
  }

  it('builds, runs on LevelDB, then as a cluster behind the balancer; two agents finish on each', async () => {
    try {
      const built = run(['docker', 'compose', 'build'], env)
      expect(built.status, built.out).toBe(0)
      const up = run(['docker', 'compose', 'up', '-d', 'accord'], env)
      expect(up.status, up.out).toBe(0)
      await ready('21234')
      agents('ws://127.0.0.1:21234')
      const cluster = run(['docker', 'compose', '--profile', 'cluster', 'up', '-d', '--wait'], env)
      expect(cluster.status, cluster.out).toBe(0)
      await ready('28080')
      agents('ws://127.0.0.1:28080')
    } finally {
      run(['docker', 'compose', '--profile', 'cluster', 'down', '-v'], env)
    }
  }, 900_000)
})
