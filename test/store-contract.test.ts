/**
 * The Store contract (src/store/contract.ts, shipped as `@accord-state/accord/server/testing`)
 * run against every backend: LevelDB (temp dir), the memory store, and PostgreSQL (a fresh schema
 * per test, dropped afterwards), plus what is specific to PostgreSQL.
 *
 * PostgreSQL: ACCORD_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test). When it
 * cannot be reached the PostgreSQL half is skipped with the reason printed, unless
 * ACCORD_REQUIRE_SERVICES=1, which makes it fail instead.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import pg from 'pg'
import { Level } from 'level'
import { openLevelStore } from '../src/store/level.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { openPostgresStore } from '../server/store/postgres.ts'
import { LATEST } from '../server/store/postgres-migrations.ts'
import * as keys from '../src/store/keys.ts'
import type { Store } from '../src/store/store.ts'
import { range, storeContract, Writer, type Backend, type StoredKind } from '../src/store/contract.ts'
import { removeTempDirs, tempDir } from './helpers/server.ts'
import { POSTGRES_URL, postgresProblem } from './helpers/services.ts'

// Backends ---------------------------------------------------------------------------------------

const openLevelBackend = async (): Promise<Backend> => {
  const dir = await tempDir('accord-contract-')
  const backend: Backend = {
    store: await openLevelStore(dir),
    corrupt: async (id, kind, n) => {
      // LevelDB allows one handle per directory: close, damage the value raw, reopen.
      await backend.store.close()
      const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
      const k = kind === 'meta' ? keys.metaKey(id) : keys.key(id, kind, n as number | string)
      const value = await db.get(k)
      if (value === undefined) throw new Error(`no value at ${k}`)
      const damaged = Uint8Array.from(value)
      damaged[damaged.length - 1] ^= 0x01
      await db.put(k, damaged)
      await db.close()
      backend.store = await openLevelStore(dir)
    },
    destroy: async () => { await backend.store.close() }
  }
  return backend
}


const PG_PAYLOAD: Record<StoredKind, { table: string, column: string, key: string }> = {
  meta: { table: 'workflows', column: 'meta', key: 'id = $1' },
  log: { table: 'log', column: 'data', key: 'workflow_id = $1 AND version = $2' },
  ver: { table: 'versions', column: 'record', key: 'workflow_id = $1 AND version = $2' },
  kf: { table: 'keyframes', column: 'state', key: 'workflow_id = $1 AND version = $2' },
  arch: { table: 'archive', column: 'chunk', key: 'workflow_id = $1 AND to_version = $2' },
  snap: { table: 'snapshots', column: 'record', key: 'workflow_id = $1 AND id = $2' },
  conf: { table: 'conflicts', column: 'record', key: 'workflow_id = $1 AND id = $2' },
  viol: { table: 'violations', column: 'record', key: 'workflow_id = $1 AND id = $2' }
}

const openPostgresBackend = async (): Promise<Backend & { schema: string, admin: pg.Client, another: () => Promise<Store> }> => {
  const schema = `accord_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: POSTGRES_URL })
  await admin.connect()
  const stores: Store[] = []
  const open = async (): Promise<Store> => {
    const s = await openPostgresStore(POSTGRES_URL, { schema, max: 4 })
    stores.push(s)
    return s
  }
  return {
    schema,
    admin,
    store: await open(),
    corrupt: async (id, kind, n) => {
      const { table, column, key } = PG_PAYLOAD[kind]
      const res = await admin.query(`UPDATE "${schema}".${table}
        SET ${column} = set_byte(${column}, length(${column}) - 1, get_byte(${column}, length(${column}) - 1) # 1)
        WHERE ${key}`, kind === 'meta' ? [id] : [id, n])
      if (res.rowCount !== 1) throw new Error(`no ${kind} ${String(n)} of ${id}`)
    },
    another: open,
    destroy: async () => {
      await Promise.all(stores.map(s => s.close()))
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await admin.end()
    }
  }
}

afterAll(async () => { await removeTempDirs() })

storeContract('LevelDB', openLevelBackend)
// The memory store holds objects, not bytes: nothing to damage underneath it.
storeContract('memory', async () => ({ store: createMemoryStore(), destroy: async () => {} }), { corruption: false })

const pgProblem = await postgresProblem()
if (pgProblem !== null && process.env.ACCORD_REQUIRE_SERVICES === '1') {
  describe('store contract: PostgreSQL', () => {
    it('needs a reachable PostgreSQL (ACCORD_REQUIRE_SERVICES=1)', () => { throw new Error(pgProblem) })
  })
} else {
  if (pgProblem !== null) console.log(`skipping the PostgreSQL store contract: ${pgProblem}`)
  storeContract('PostgreSQL', openPostgresBackend, { skip: pgProblem ?? undefined })

  ;(pgProblem === null ? describe : describe.skip)('PostgreSQL store specifics', () => {
    const backends: Array<Awaited<ReturnType<typeof openPostgresBackend>>> = []
    afterEach(async () => { await Promise.all(backends.splice(0).map(x => x.destroy())) })

    it('migrates once even when servers start together, and records the migration', async () => {
      const b = await openPostgresBackend()
      backends.push(b)
      await Promise.all([b.another(), b.another(), b.another()])
      const { rows } = await b.admin.query(`SELECT version FROM "${b.schema}".accord_migrations ORDER BY version`)
      expect(rows.map(r => r.version)).toEqual(range(1, LATEST))
    })

    it('refuses a schema written by a newer Accord, and an invalid schema name', async () => {
      const b = await openPostgresBackend()
      backends.push(b)
      await b.admin.query(`INSERT INTO "${b.schema}".accord_migrations (version, name) VALUES ($1, 'from the future')`, [LATEST + 1])
      await expect(openPostgresStore(POSTGRES_URL, { schema: b.schema })).rejects.toMatchObject({ code: 'STORAGE_FAILURE', message: expect.stringMatching(/newer/) })
      await expect(openPostgresStore(POSTGRES_URL, { schema: 'bad"name' })).rejects.toMatchObject({ code: 'STORAGE_FAILURE' })
    })

    it('takes the schema from the URL, and reports an unreachable database as a storage failure', async () => {
      const b = await openPostgresBackend()
      backends.push(b)
      await new Writer('wf-url').write(b.store, 2)
      const url = new URL(POSTGRES_URL)
      url.searchParams.set('schema', b.schema)
      const viaUrl = await openPostgresStore(url.toString())
      try {
        expect((await viaUrl.getMeta('wf-url'))?.head).toBe(2)
      } finally {
        await viaUrl.close()
      }
      await expect(openPostgresStore('postgres://postgres@127.0.0.1:1/none', { pool: { connectionTimeoutMillis: 2000 } }))
        .rejects.toMatchObject({ code: 'STORAGE_FAILURE' })
    })

    it('scan checks the head column against the meta', async () => {
      const b = await openPostgresBackend()
      backends.push(b)
      await new Writer('wf-col').write(b.store, 3)
      await b.admin.query(`UPDATE "${b.schema}".workflows SET head = 7 WHERE id = 'wf-col'`)
      expect(await b.store.scan()).toEqual([{ key: keys.metaKey('wf-col'), problem: expect.stringMatching(/head column/) }])
    })
  })
}
