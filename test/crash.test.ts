/**
 * Crash safety: the real server (the CLI, as a child process) under a write storm from several
 * agents is killed with SIGKILL at random points, at least 20 times, and restarted on the same
 * data dir. Every edit any agent made must end up on the server and on every agent, the version
 * history must have no gaps or duplicates, and `accord verify` must find nothing wrong.
 */
import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { portIsFree, tempDir } from './helpers/server.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { kill, runAccord, spawnAccord } from './helpers/child.ts'
import { api } from './helpers/http.ts'
import { expectGapless, historyOverHttp } from './helpers/history.ts'
import { startStorm } from './helpers/storm.ts'

useServers() // cleanup of clients and children
const KILLS = 20
const AGENTS = 4

const mulberry32 = (seed: number) => () => {
  seed |= 0
  seed = seed + 0x6D2B79F5 | 0
  let t = Math.imul(seed ^ seed >>> 15, 1 | seed)
  t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
  return ((t ^ t >>> 14) >>> 0) / 4294967296
}

describe('crash safety', () => {
  it(`survives ${KILLS} SIGKILLs during a write storm without losing or duplicating anything`, async () => {
    const seed = Number(process.env.ACCORD_CRASH_SEED ?? Date.now() % 100_000)
    const random = mulberry32(seed)
    const dir = await tempDir()
    let server = await spawnAccord(['serve', '--port', '0', '--data', dir, '--log-level', 'error'])
    const port = server.port
    const http = `http://127.0.0.1:${port}`
    const head = async (): Promise<number> => {
      const r = await api(http, 'GET', '/v1/workflows/wf-crash').catch(() => null)
      return r?.status === 200 ? r.body.version as number : 0
    }

    const agents = Array.from({ length: AGENTS }, (_, i) => sdkAgent(server.url, 'wf-crash', `agent-${i}`, { recovery: { baseMs: 20, capMs: 150 } }))
    const storm = startStorm(agents, 4)
    try {
      for (let k = 0; k < KILLS; k++) {
        const from = await head()
        const more = 1 + Math.floor(random() * 25)
        await waitFor(async () => (await head()) >= from + more, { what: `${more} new versions before kill ${k + 1} (seed ${seed})`, timeoutMs: 30_000 })
        await kill(server.child)
        await waitFor(() => portIsFree(port), { intervalMs: 20, what: 'port free' })
        server = await spawnAccord(['serve', '--port', String(port), '--data', dir, '--log-level', 'error'])
      }
    } finally {
      storm.stop()
    }

    const expected = storm.expected()
    await waitFor(() => agents.every(a => a.synced), { what: `agents synced (seed ${seed})`, timeoutMs: 30_000 })
    const final = await waitForConvergence(agents.map(a => () => a.state), 30_000)
    expect(final, `seed ${seed}`).toEqual(expected)
    await waitFor(async () => {
      const r = await api(http, 'GET', '/v1/workflows/wf-crash')
      return Object.keys(r.body.state).length === Object.keys(expected).length
    }, { what: 'the server has every edit', timeoutMs: 30_000 })
    expect((await api(http, 'GET', '/v1/workflows/wf-crash')).body.state, `seed ${seed}`).toEqual(expected)

    expectGapless(await historyOverHttp(http, 'wf-crash'), `seed ${seed}`)

    await Promise.all(agents.map(a => a.close()))
    server.child.kill('SIGTERM')
    await new Promise(resolve => server.child.once('exit', resolve))
    const verified = await runAccord(['verify', '--data', dir])
    expect(verified.stdout, `seed ${seed}`).toMatch(/checked 1 workflows, \d+ versions: no problems/)
    expect(verified.code).toBe(0)
    // 21 process starts: about 1.3 s each on an idle 2-core machine, several times that under a
    // full suite's load; every wait inside has its own bound.
  }, 240_000)
})
