/**
 * `accord serve --workers N` as operators run it: one port, N worker processes each owning a
 * shard of the workflows (server/workers/). Real processes, real LevelDB shards in temp dirs,
 * stock y-websocket clients and the SDK on separate connections, SIGKILL of a worker.
 */
import https from 'node:https'
import path from 'node:path'
import WS from 'ws'
import { openWorkflow } from '../src/node/index.ts'
import { afterEach, describe, expect, it } from 'vitest'
import { mintToken } from '../server/http/auth.ts'
import { openLevelStore } from '../src/store/level.ts'
import { stateRoot } from '../src/model/json-yjs.ts'
import { shardOf } from '../server/workers/shard-of.ts'
import { killChildren, runAccord, spawnAccord } from './helpers/child.ts'
import { closeClients, sdkAgent, stockClient } from './helpers/clients.ts'
import { api, openSse } from './helpers/http.ts'
import { removeTempDirs, tempDir } from './helpers/server.ts'
import { dropServiceData, POSTGRES_URL, REDIS_URL, servicesMissing, uniqueName, writerOf } from './helpers/services.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { hasOpenssl, selfSignedCert } from './helpers/tls.ts'

const missing = await servicesMissing()
if (missing !== null) console.warn(`skipping accord serve --workers on PostgreSQL: ${missing}`)

afterEach(async () => {
  await closeClients()
  await killChildren()
  await removeTempDirs()
})

const http = (url: string): string => url.replace(/^ws/, 'http')

/** `count` workflow ids for each of `workers` shards, so every test spans all of them. */
const idsPerShard = (workers: number, count: number, prefix: string): string[][] => {
  const shards: string[][] = Array.from({ length: workers }, () => [])
  for (let n = 0; shards.some(s => s.length < count); n++) {
    const id = `${prefix}-${n}`
    const s = shards[shardOf(id, workers)] as string[]
    if (s.length < count) s.push(id)
  }
  return shards
}

interface WorkerInfo { index: number, pid: number | null, state: string, restarts: number, ready: boolean, serverId?: string }
const workersOf = async (base: string): Promise<WorkerInfo[]> => (await api(base, 'GET', '/readyz')).body.workers as WorkerInfo[]

/** Stops a server with SIGTERM and resolves with its last stdout line. */
const stop = (child: import('node:child_process').ChildProcess): Promise<string> => new Promise(resolve => {
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.once('exit', () => { resolve(out.trim()) })
  child.kill('SIGTERM')
})

describe('accord serve --workers', () => {
  it('every connection of a workflow meets in its worker: stock clients and SDK agents on separate connections converge, each workflow is stored in its own shard only, the list spans shards', async () => {
    const data = await tempDir()
    const { child, url } = await spawnAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    const base = http(url)
    const shards = idsPerShard(2, 2, 'meet')
    const ids = shards.flat()
    for (const id of ids) {
      const stock = [stockClient(url, id), stockClient(url, id)]
      const agent = sdkAgent(url, id, `agent-${id}`)
      await Promise.all([...stock.map(c => c.synced()), agent.whenSynced()])
      stock[0]?.doc.transact(() => { stateRoot(stock[0]!.doc).set('from-stock', id) })
      agent.update(d => { (d as Record<string, unknown>).fromAgent = id })
      const state = await waitForConvergence([() => stock[0]?.json(), () => stock[1]?.json(), () => agent.state])
      expect(state).toEqual({ 'from-stock': id, fromAgent: id })
      await agent.whenPersisted()
    }
    const listed = await api(base, 'GET', '/v1/workflows')
    expect(listed.status).toBe(200)
    expect((listed.body as Array<{ workflowId: string }>).map(w => w.workflowId)).toEqual([...ids].sort())
    const metrics = await api(base, 'GET', '/metrics')
    // Summed over both workers: 2 stock clients and 1 agent per workflow.
    expect(metrics.body).toMatch(new RegExp(`^accord_connections ${ids.length * 3}$`, 'm'))
    await closeClients()
    expect(await stop(child)).toMatch(/accord stopped cleanly: \d+ workflows flushed, 2 workers stopped, store closed$/)
    for (const [index, own] of shards.entries()) {
      const store = await openLevelStore(path.join(data, `shard-${index}`), { mustExist: true })
      const stored = (await store.listWorkflows()).map(m => m.id).sort()
      await store.close()
      expect(stored).toEqual([...own].sort())
    }
    const verified = await runAccord(['verify', '--data', data])
    expect(verified.stdout).toContain(`checked ${ids.length} workflows`)
    expect(verified.code).toBe(0)
  })

  it('a burst of connections is handed over whole: every socket syncs, none loses the first frame it sends after the handshake', async () => {
    const data = await tempDir()
    const { url } = await spawnAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    // The client speaks the moment the worker's 101 arrives, while the primary may still hold
    // its copy of the socket: a read there would drop that frame and the client never syncs.
    const clients = Array.from({ length: 200 }, (_, i) => stockClient(url, `burst-${i % 20}`))
    await Promise.all(clients.map(c => c.synced()))
    expect(clients.every(c => c.provider.synced)).toBe(true)
  })

  it('SIGKILL of a worker loses nothing acknowledged: the primary restarts it, its clients reconnect, the other shard never stopped', async () => {
    const data = await tempDir()
    const { url } = await spawnAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    const base = http(url)
    const [[victim], [bystander]] = idsPerShard(2, 1, 'kill') as [[string], [string]]
    const agent = sdkAgent(url, victim, 'writer')
    const other = sdkAgent(url, bystander, 'writer')
    await Promise.all([agent.whenSynced(), other.whenSynced()])
    for (let i = 0; i < 20; i++) agent.update(d => { (d as Record<string, unknown>)[`k${i}`] = i })
    await agent.whenPersisted()
    const patched = await api(base, 'PATCH', `/v1/workflows/${victim}`, { raw: '[{"op":"add","path":"/http","value":true}]', headers: { 'content-type': 'application/json-patch+json' } })
    expect(patched.status).toBe(200)
    const before = (await workersOf(base))[shardOf(victim, 2)] as WorkerInfo
    process.kill(before.pid as number, 'SIGKILL')
    const after = await waitFor(async () => {
      const w = (await workersOf(base))[before.index] as WorkerInfo
      return w.ready && w.pid !== before.pid ? w : null
    }, { what: 'the killed worker restarted' })
    expect(after.restarts).toBe(1)
    const state = (await api(base, 'GET', `/v1/workflows/${victim}`)).body.state as Record<string, unknown>
    expect(state.http).toBe(true)
    for (let i = 0; i < 20; i++) expect(state[`k${i}`]).toBe(i)
    // The SDK reconnects to the restarted worker and keeps writing; the other shard's worker is the same process.
    agent.update(d => { (d as Record<string, unknown>).afterRestart = 1 })
    await waitFor(async () => (await api(base, 'GET', `/v1/workflows/${victim}`)).body.state.afterRestart === 1, { what: 'a write after the restart' })
    expect(((await workersOf(base))[1 - before.index] as WorkerInfo).pid).not.toBe(null)
    expect(((await workersOf(base))[1 - before.index] as WorkerInfo).restarts).toBe(0)
  })

  it('SIGKILL of the primary: its workers flush and exit on their own, and a new primary serves every acknowledged edit', async () => {
    const data = await tempDir()
    const first = await spawnAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    const ids = idsPerShard(2, 1, 'orphan').flat()
    for (const id of ids) {
      const agent = sdkAgent(first.url, id, 'writer')
      await agent.whenSynced()
      agent.update(d => { (d as Record<string, unknown>).id = id })
      await agent.whenPersisted()
    }
    const pids = (await workersOf(http(first.url))).map(w => w.pid as number)
    first.child.kill('SIGKILL')
    const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
    await waitFor(() => pids.every(pid => !alive(pid)), { what: 'the orphaned workers exited' })
    await closeClients()
    const again = await spawnAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    for (const id of ids) expect((await api(http(again.url), 'GET', `/v1/workflows/${id}`)).body.state).toEqual({ id })
  })

  it('auth, per-workflow SSE, the list feed and metrics answer as one server: refusals come back as they are', async () => {
    const data = await tempDir()
    const secret = 'workers-secret-0123456789abcdef'
    const { url } = await spawnAccord(['serve', '--workers', '2', '--data', data, '--port', '0', '--auth-secret', secret])
    const base = http(url)
    const admin = await mintToken({ secret, agentId: 'ops', scopes: ['admin:*'] })
    const auth = { authorization: `Bearer ${admin}` }
    const [[a], [b]] = idsPerShard(2, 1, 'sse') as [[string], [string]]
    expect((await api(base, 'GET', '/v1/workflows')).status).toBe(401)
    expect((await api(base, 'GET', '/metrics')).status).toBe(401)
    const denied = stockClient(url, a)
    await waitFor(() => denied.provider.wsconnected === false && denied.provider.shouldConnect, { what: 'the unauthenticated socket was refused' })
    denied.close()
    const feed = openSse(`${base}/v1/watch/workflows?token=${admin}`)
    expect(await feed.status).toBe(200)
    for (const id of [a, b]) {
      expect((await api(base, 'POST', '/v1/workflows', { body: { workflowId: id, state: { n: 1 } }, headers: auth })).status).toBe(201)
    }
    await waitFor(() => [a, b].every(id => feed.events.some(e => JSON.parse(e.data).workflowId === id)), { what: 'list feed events from both shards' })
    const events = openSse(`${base}/v1/workflows/${b}/events?token=${admin}&after=0`)
    expect(await events.status).toBe(200)
    await waitFor(() => events.events.length > 0, { what: 'a change event of one workflow' })
    const listed = await api(base, 'GET', '/v1/workflows', { headers: auth })
    expect((listed.body as Array<{ workflowId: string }>).map(w => w.workflowId)).toEqual([a, b].sort())
    expect((await api(base, 'POST', '/v1/workflows', { body: { workflowId: a }, headers: auth })).status).toBe(409)
    expect((await api(base, 'GET', '/metrics', { headers: auth })).body).toMatch(/^accord_versions_persisted_total 2$/m)
    feed.close()
    events.close()
  })

  it('backup, verify and rekey cover every shard; another worker count is refused until accord reshard moves the data', async () => {
    const data = await tempDir()
    const { child, url } = await spawnAccord(['serve', '--workers', '3', '--data', data, '--port', '0'])
    const base = http(url)
    const ids = idsPerShard(3, 2, 'bk').flat()
    for (const id of ids) expect((await api(base, 'POST', '/v1/workflows', { body: { workflowId: id, state: { id } } })).status).toBe(201)
    const backupDir = path.join(await tempDir(), 'backup')
    const backedUp = await runAccord(['backup', backupDir, '--server', base])
    expect(backedUp.stdout).toContain(`backed up ${ids.length} workflows`)
    expect(backedUp.code).toBe(0)
    await stop(child)
    const restored = path.join(await tempDir(), 'restored')
    const restore = await runAccord(['restore-backup', backupDir, '--data', restored])
    expect(restore.stdout).toContain(`restored ${ids.length} workflows`)

    const refused = await runAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('was written by 3 workers, not 2')
    expect(refused.stderr).toContain(`accord reshard --data ${data} --workers 2`)

    const keyDir = await tempDir()
    const keyFile = path.join(keyDir, 'key')
    await import('node:fs/promises').then(fs => fs.writeFile(keyFile, 'ab'.repeat(32)))
    const rekeyed = await runAccord(['rekey', '--data', data, '--new-key-file', keyFile])
    expect(rekeyed.stdout).toContain('verified')
    expect(rekeyed.code).toBe(0)
    expect((await runAccord(['verify', '--data', data])).code).toBe(1)
    const verified = await runAccord(['verify', '--data', data, '--encryption-key-file', keyFile])
    expect(verified.stdout).toContain(`checked ${ids.length} workflows`)

    const resharded = await runAccord(['reshard', '--data', data, '--workers', '2', '--encryption-key-file', keyFile])
    expect(resharded.stdout).toContain(`resharded ${ids.length} workflows`)
    expect(resharded.code).toBe(0)
    // The count comes from the directory: no --workers needed.
    const again = await spawnAccord(['serve', '--data', data, '--port', '0', '--encryption-key-file', keyFile])
    const listed = await api(http(again.url), 'GET', '/v1/workflows')
    expect((listed.body as Array<{ workflowId: string }>).map(w => w.workflowId)).toEqual([...ids].sort())
    for (const id of ids) expect((await api(http(again.url), 'GET', `/v1/workflows/${id}`)).body.state).toEqual({ id })
  })

  it('a shard in use refuses to start with the store named, and nothing else opens', async () => {
    const data = await tempDir()
    await spawnAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    const second = await runAccord(['serve', '--workers', '2', '--data', data, '--port', '0'])
    expect(second.code).toBe(1)
    expect(second.stderr).toMatch(/worker \d did not start: .*another accord serve is using .*shard-\d/)
    const mcp = await runAccord(['serve', '--workers', '2', '--data', await tempDir(), '--port', '0', '--mcp'])
    expect(mcp.code).toBe(2)
    expect(mcp.stderr).toContain('--mcp needs --workers 1')
  })

  it.skipIf(missing !== null)('on PostgreSQL + Redis every worker is a cluster member: clients of both shards converge, the list is one store\'s, and the store verifies', async () => {
    const schema = uniqueName('workers')
    const prefix = `${schema}:`
    try {
      const { child, url } = await spawnAccord(['serve', '--workers', '2', '--port', '0', '--store', `${POSTGRES_URL}?schema=${schema}`, '--bus', REDIS_URL, '--bus-prefix', prefix], 40_000)
      const base = http(url)
      const ids = idsPerShard(2, 1, 'pg').flat()
      for (const id of ids) {
        const a = sdkAgent(url, id, 'a')
        const b = stockClient(url, id)
        await Promise.all([a.whenSynced(), b.synced()])
        a.update(d => { (d as Record<string, unknown>).id = id })
        await waitForConvergence([() => a.state, b.json])
        await a.whenPersisted()
      }
      const listed = await api(base, 'GET', '/v1/workflows')
      expect((listed.body as Array<{ workflowId: string }>).map(w => w.workflowId).sort()).toEqual([...ids].sort())
      const ready = await workersOf(base)
      expect(ready.map(w => w.ready)).toEqual([true, true])
      // /readyz names each worker's cluster id: the lease of each workflow names its owner's.
      const serverIds = ready.map(w => w.serverId)
      expect(new Set(serverIds).size).toBe(2)
      for (const id of ids) expect(await writerOf(prefix, id)).toBe(serverIds[shardOf(id, 2)])
      await closeClients()
      await stop(child)
      const verified = await runAccord(['verify', '--store', `${POSTGRES_URL}?schema=${schema}`])
      expect(verified.stdout).toContain(`checked ${ids.length} workflows`)
      expect(verified.code).toBe(0)
    } finally {
      await dropServiceData({ schema, redisPrefix: prefix })
    }
  })

  it.skipIf(!hasOpenssl)('under TLS the primary terminates wss:// and https:// and pipes each socket to its worker', async () => {
    const dir = await tempDir()
    const { cert, key, ca } = await selfSignedCert(dir)
    const { child, url } = await spawnAccord(['serve', '--workers', '2', '--data', path.join(dir, 'data'), '--port', '0', '--tls-cert', cert, '--tls-key', key])
    expect(url).toMatch(/^wss:/)
    class TrustingWebSocket extends WS {
      constructor (u: string, protocols?: string | string[]) { super(u, protocols, { ca }) }
    }
    const handles: Array<ReturnType<typeof openWorkflow>> = []
    try {
      for (const id of idsPerShard(2, 1, 'tls').flat()) {
        const a = openWorkflow(id, { url, agentId: 'a', WebSocket: TrustingWebSocket as unknown as typeof globalThis.WebSocket })
        const b = openWorkflow(id, { url, agentId: 'b', WebSocket: TrustingWebSocket as unknown as typeof globalThis.WebSocket })
        handles.push(a, b)
        await Promise.all([a.whenSynced(), b.whenSynced()])
        a.update((d: Record<string, unknown>) => { d.secure = id })
        expect(await waitForConvergence([() => a.state, () => b.state])).toEqual({ secure: id })
      }
      const port = new URL(url).port
      const ready = await new Promise<number>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port, path: '/readyz', ca }, res => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject)
      })
      expect(ready).toBe(200)
    } finally {
      await Promise.all(handles.map(h => h.close()))
      child.kill('SIGTERM')
    }
  })
})
