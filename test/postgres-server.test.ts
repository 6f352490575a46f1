/**
 * A real server on the PostgreSQL store: clients sync through it, and a new server (a new pool on
 * the same schema) serves the same state and history after a restart. Also `accord serve --store`.
 *
 * PostgreSQL: ACCORD_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), one
 * fresh schema per test, dropped afterwards. Unreachable: skipped with the reason printed, unless
 * ACCORD_REQUIRE_SERVICES=1 (then it fails).
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { openPostgresStore } from '../server/store/postgres.ts'
import type { Store } from '../src/store/store.ts'
import { verifyStore } from '../server/ops/verify.ts'
import { removeTempDirs, startServer, tempDir, type TestServer } from './helpers/server.ts'
import { historyOf } from './helpers/history.ts'
import { closeClients, sdkAgent, stockClient } from './helpers/clients.ts'
import { killChildren, runAccord, spawnAccord } from './helpers/child.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { POSTGRES_URL, dropServiceData, postgresProblem } from './helpers/services.ts'


const servers: TestServer[] = []
const stores: Store[] = []
const schemas: string[] = []

const newSchema = (): string => {
  const schema = `accord_test_${randomBytes(6).toString('hex')}`
  schemas.push(schema)
  return schema
}

const openStore = async (schema: string): Promise<Store> => {
  const store = await openPostgresStore(POSTGRES_URL, { schema, max: 4 })
  stores.push(store)
  return store
}

afterEach(async () => {
  // Servers before their stores, stores before their schema.
  await killChildren()
  await closeClients()
  await Promise.all(servers.splice(0).map(s => s.stop()))
  await Promise.all(stores.splice(0).map(s => s.close()))
  for (const schema of schemas.splice(0)) await dropServiceData({ schema })
  await removeTempDirs()
})

const pgProblem = await postgresProblem()
const required = process.env.ACCORD_REQUIRE_SERVICES === '1'
if (pgProblem !== null && !required) console.log(`skipping the PostgreSQL server tests: ${pgProblem}`)

;(pgProblem !== null && !required ? describe.skip : describe)('a server on PostgreSQL', () => {
  it('syncs two clients, and after a restart serves the same state, history, archive and snapshots', async () => {
    if (pgProblem !== null) throw new Error(pgProblem)
    const schema = newSchema()
    const opts = { keyframeEvery: 10, retention: { maxVersions: 10 } }
    const first = await startServer({ ...opts, store: await openStore(schema) })
    servers.push(first)
    const store = first.server.store
    const head = async (): Promise<number> => (await store.getMeta('wf-pg'))?.head ?? 0
    const a = sdkAgent(first.url, 'wf-pg', 'agent-a')
    const b = sdkAgent(first.url, 'wf-pg', 'agent-b')
    await Promise.all([a.whenSynced(), b.whenSynced()])
    for (let i = 0; i < 35; i++) {
      // One version per edit, alternating writers.
      const writer = i % 2 === 0 ? a : b
      writer.update(d => { d.counter = i; d[`k${i % 5}`] = { by: writer === a ? 'a' : 'b', i } }, { description: `edit ${i}` })
      await waitFor(async () => (await head()) === i + 1, { what: `edit ${i} stored` })
      // Both must hold it before the next edit: stored is not yet received, and an edit made before
      // receiving this one would be concurrent with it (and could lose the counter to it).
      await waitFor(() => [a, b].every(x => (x.state as { counter?: number }).counter === i), { what: `edit ${i} received` })
    }
    const final = JSON.stringify(await waitForConvergence([() => a.state, () => b.state]))
    expect(JSON.parse(final).counter).toBe(34)
    await waitFor(async () => (await store.archivedThrough('wf-pg')) === 20, { what: 'old versions archived' })
    const snap = await first.server.createSnapshot('wf-pg', { name: 'before restart', version: 12 })
    const history = await first.server.history('wf-pg', { limit: 1000 })
    expect(history.map(v => v.version)).toEqual(Array.from({ length: 35 }, (_, i) => 35 - i))
    expect(history.find(v => v.version === 1)).toMatchObject({ author: 'agent-a', description: 'edit 0' })
    const states = new Map<number, string>()
    for (const v of [1, 5, 12, 20, 21, 30, 35]) states.set(v, JSON.stringify(await first.server.stateAt('wf-pg', v)))
    expect(states.get(35)).toBe(final)
    expect(JSON.parse(states.get(5) as string).counter).toBe(4)
    await closeClients()
    await first.stop()
    await store.close()

    // A new server with a new pool on the same schema.
    const second = await startServer({ ...opts, store: await openStore(schema) })
    servers.push(second)
    const reader = stockClient(second.url, 'wf-pg')
    await reader.synced()
    expect(JSON.stringify(reader.json())).toBe(final)
    expect(await second.server.history('wf-pg', { limit: 1000 })).toEqual(history)
    for (const [v, json] of states) expect(JSON.stringify(await second.server.stateAt('wf-pg', v)), `state at ${v}`).toBe(json)
    expect(await second.server.listSnapshots('wf-pg')).toEqual([snap])
    expect((await verifyStore(second.server.store)).problems).toEqual([])

    // Writing goes on from the stored head: version numbers stay gapless.
    const c = sdkAgent(second.url, 'wf-pg', 'agent-c')
    await c.whenSynced()
    c.update(d => { d.after = 'restart' })
    await waitFor(async () => (await second.server.store.getMeta('wf-pg'))?.head === 36, { what: 'version 36 stored' })
    expect((await second.server.history('wf-pg', { limit: 1 }))[0]).toMatchObject({ version: 36, parentVersion: 35, author: 'agent-c' })
    await waitFor(() => (reader.json() as Record<string, unknown>).after === 'restart', { what: 'the reader sees the new edit' })
  })

  it('accord verify --store postgres://... checks a store a server keeps writing, and names a damaged row', async () => {
    if (pgProblem !== null) throw new Error(pgProblem)
    const schema = newSchema()
    const url = new URL(POSTGRES_URL)
    url.searchParams.set('schema', schema)
    const srv = await startServer({ keyframeEvery: 10, retention: { maxVersions: 10 }, store: await openStore(schema) })
    servers.push(srv)
    const a = sdkAgent(srv.url, 'wf-verify', 'agent-a')
    await a.whenSynced()
    for (let i = 0; i < 40; i++) {
      a.update(d => { d.n = i })
      await waitFor(async () => ((await srv.server.store.getMeta('wf-verify'))?.head ?? 0) > i, { what: `edit ${i} stored` })
    }
    await waitFor(async () => await srv.server.store.archivedThrough('wf-verify') >= 20, { what: 'old versions archived' })

    // Online: the agent keeps writing (and the server archiving) while verify reads, so versions
    // land between verify listing the workflow and reading its history.
    let writing = true
    const writer = (async () => {
      for (let n = 40; writing; n++) {
        a.update(d => { d.n = n })
        await new Promise(resolve => setTimeout(resolve, 1))
      }
    })()
    const before = (await srv.server.store.getMeta('wf-verify'))?.head ?? 0
    const online = await runAccord(['verify', '--store', url.toString()])
    writing = false
    await writer
    expect((await srv.server.store.getMeta('wf-verify'))?.head ?? 0).toBeGreaterThan(before + 10)
    expect(online.stderr).toBe('')
    expect(online.stdout).toMatch(/^checked 1 workflows, \d+ versions: no problems\n$/)
    expect(online.code).toBe(0)

    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    try {
      const { rows } = await client.query(`SELECT max(version)::int AS v FROM "${schema}".versions WHERE workflow_id = 'wf-verify'`)
      const damaged = rows[0].v as number
      await client.query(`UPDATE "${schema}".versions SET record = set_byte(record, 8, get_byte(record, 8) # 1) WHERE workflow_id = 'wf-verify' AND version = $1`, [damaged])
      const found = await runAccord(['verify', '--store', url.toString()])
      expect(found.code).toBe(1)
      expect(found.stdout).toContain(`PROBLEM  w!wf-verify!ver!`)
      expect(found.stdout).toContain('checksum mismatch')
    } finally {
      await client.end()
    }

    const mixed = await runAccord(['verify', '--store', url.toString(), '--data', './data'])
    expect(mixed.code).toBe(2)
    expect(mixed.stderr).toContain('--store takes neither --data nor --encryption-key-file')
  })

  it('accord backup copies a PostgreSQL store under writes as one point in time, and it restores into LevelDB', async () => {
    if (pgProblem !== null) throw new Error(pgProblem)
    const srv = await startServer({ keyframeEvery: 10, retention: { maxVersions: 10 }, store: await openStore(newSchema()) })
    servers.push(srv)
    const ids = ['pg-bk-a', 'pg-bk-b']
    const agents = ids.map(id => sdkAgent(srv.url, id, `writer-${id}`))
    await Promise.all(agents.map(a => a.whenSynced()))
    let n = 0
    const storm = setInterval(() => {
      n++
      agents.forEach(a => a.update(d => { d[`k${n % 20}`] = { n } }, { description: `write ${n}` }))
    }, 3)
    try {
      await waitFor(async () => ((await srv.server.store.getMeta('pg-bk-b'))?.head ?? 0) > 30, { what: 'some history' })
      await waitFor(async () => await srv.server.store.archivedThrough('pg-bk-a') > 0, { what: 'an archived interval' })
      await srv.server.createSnapshot('pg-bk-a', { name: 'before backup', kind: 'manual' })
      const dir = path.join(await tempDir(), 'backup')
      const run = await runAccord(['backup', dir, '--server', `http://127.0.0.1:${srv.port}`])
      expect(run.stderr).toBe('')
      expect(run.stdout).toMatch(/backed up 2 workflows/)
      expect(run.code).toBe(0)
      const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { workflows: Array<{ id: string, head: number }> }
      // Writes go on: the backup is the point in time of its transaction, not the end state.
      const head = manifest.workflows.find(w => w.id === 'pg-bk-a')?.head ?? 0
      await waitFor(async () => ((await srv.server.store.getMeta('pg-bk-a'))?.head ?? 0) > head, { what: 'writes after the backup' })

      const target = path.join(await tempDir(), 'restored')
      const restored = await runAccord(['restore-backup', dir, '--data', target])
      expect(restored.stdout).toMatch(/restored 2 workflows, \d+ versions .* verified/)
      expect(restored.code).toBe(0)
      const copy = await startServer({ dataDir: target })
      servers.push(copy)
      expect(manifest.workflows.map(w => w.id).sort()).toEqual(ids)
      for (const { id, head } of manifest.workflows) {
        expect((await copy.server.store.getMeta(id))?.head).toBe(head)
        expect(await historyOf(copy.server, id)).toEqual((await historyOf(srv.server, id)).filter(v => v.version <= head))
        expect(await copy.server.stateAt(id, head)).toEqual(await srv.server.stateAt(id, head))
      }
      expect((await copy.server.listSnapshots('pg-bk-a')).map(s => s.name)).toContain('before backup')
    } finally {
      clearInterval(storm)
    }
  })

  it('accord serve --store postgres://...?schema= serves from PostgreSQL; other --store values are usage errors', async () => {
    if (pgProblem !== null) throw new Error(pgProblem)
    const schema = newSchema()
    const url = new URL(POSTGRES_URL)
    url.searchParams.set('schema', schema)
    const served = await spawnAccord(['serve', '--port', '0', '--store', url.toString(), '--log-level', 'silent'])
    const a = sdkAgent(served.url, 'wf-cli-pg', 'agent-a')
    await a.whenSynced()
    a.update(d => { d.via = 'cli' })
    const store = await openStore(schema)
    await waitFor(async () => (await store.getMeta('wf-cli-pg'))?.head === 1, { what: 'the CLI server stored the edit' })
    await closeClients()
    const exited = new Promise<number | null>(resolve => { served.child.once('exit', code => { resolve(code) }) })
    served.child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect((await store.versions('wf-cli-pg', { limit: 10 })).map(r => r.version)).toEqual([1])

    const bad = await runAccord(['serve', '--port', '0', '--store', 'mysql://127.0.0.1/x'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--store must be a postgres:// URL')
  })
})
