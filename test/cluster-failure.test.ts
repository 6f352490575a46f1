/**
 * Cluster failure: three `accord serve` processes on one PostgreSQL store and a Redis bus, behind
 * a TCP load balancer. The one writing the workflow is SIGKILLed during a write storm, holding
 * its writer lease; its clients reconnect to the others, one of which takes over once the lease
 * expires, and nothing is lost; restarted, it catches up. The history stays gapless.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent, closeClients } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { kill, spawnAccord } from './helpers/child.ts'
import { api } from './helpers/http.ts'
import { expectGapless, historyOverHttp } from './helpers/history.ts'
import { startStorm } from './helpers/storm.ts'
import { startBalancer, type Balancer } from './helpers/balancer.ts'
import { POSTGRES_URL, REDIS_URL, dropServiceData, serverIdOf, servicesMissing, uniqueName, writerOf } from './helpers/services.ts'

const missing = await servicesMissing()
if (missing !== null) console.log(`cluster failure test skipped: ${missing}`)

useServers() // kills children, closes clients
let balancer: Balancer | null = null
let schema = ''

afterEach(async () => {
  await closeClients()
  await balancer?.close()
  balancer = null
  await dropServiceData({ schema, redisPrefix: `${schema}:` })
})

describe.skipIf(missing !== null)('cluster failure', () => {
  it('loses nothing when the server writing the workflow is killed during a write storm; another takes over and the restarted one catches up', async () => {
    schema = uniqueName('failover')
    // One process per server: what is killed below is the server writing the workflow.
    const args = ['serve', '--workers', '1', '--port', '0', '--store', `${POSTGRES_URL}?schema=${schema}`, '--bus', REDIS_URL, '--bus-prefix', `${schema}:`, '--log-level', 'error']
    const servers = []
    for (let i = 0; i < 3; i++) servers.push(await spawnAccord(args)) // one at a time: the first migrates
    const live = servers.map(s => s.port)
    balancer = await startBalancer(() => live)
    const http = (port: number): string => `http://127.0.0.1:${port}`

    const agents = Array.from({ length: 6 }, (_, i) => sdkAgent(balancer!.url, 'wf-failover', `agent-${i}`, { recovery: { baseMs: 20, capMs: 200 } }))
    await Promise.all(agents.map(a => a.whenSynced()))
    const storm = startStorm(agents, 5)
    const head = async (port: number): Promise<number> => {
      const r = await api(http(port), 'GET', '/v1/workflows/wf-failover').catch(() => null)
      return r?.status === 200 ? r.body.version as number : 0
    }
    try {
      await waitFor(async () => (await head(live[0]!)) >= 30, { what: 'the storm is stored', timeoutMs: 30_000 })
      // The hard case: the server that writes the workflow dies holding its lease.
      const writerId = await writerOf(`${schema}:`, 'wf-failover')
      const ids = await Promise.all(servers.map(s => serverIdOf(http(s.port))))
      const victim = servers[ids.indexOf(writerId as string)]!
      expect(victim).toBeDefined()
      live.splice(live.indexOf(victim.port), 1)
      await kill(victim.child)
      const before = await head(live[0]!)
      await waitFor(async () => (await head(live[0]!)) >= before + 30, { what: 'writes continue on the survivors', timeoutMs: 30_000 })
      const restarted = await spawnAccord(args)
      servers.push(restarted)
      live.push(restarted.port)
      const now = await head(live[0]!)
      await waitFor(async () => (await head(restarted.port)) >= now + 10, { what: 'the restarted server catches up and follows', timeoutMs: 30_000 })
    } finally {
      storm.stop()
    }

    const expected = storm.expected()
    await waitFor(() => agents.every(a => a.synced), { what: 'agents reconnected', timeoutMs: 30_000 })
    const final = await waitForConvergence(agents.map(a => () => a.state), 30_000)
    expect(final).toEqual(expected)
    for (const port of live) {
      await waitFor(async () => {
        const r = await api(http(port), 'GET', '/v1/workflows/wf-failover')
        return Object.keys(r.body.state ?? {}).length === Object.keys(expected).length
      }, { what: `server ${port} has every edit`, timeoutMs: 30_000 })
      expect((await api(http(port), 'GET', '/v1/workflows/wf-failover')).body.state).toEqual(expected)
    }
    expectGapless(await historyOverHttp(http(live[0]!), 'wf-failover'))
  })
})
