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
import * as encoding from 'lib0/encoding'
import { compress, decodeChunk, encodeUpdates } from '../src/store/codec.ts'
import { frame, unframe } from '../src/store/frame.ts'
import type { Store } from '../src/store/store.ts'
import { range, stateOf, storeContract, Writer, type Backend, type StoredKind } from '../src/store/contract.ts'
import { removeTempDirs, tempDir } from './helpers/server.ts'
import { POSTGRES_URL, postgresProblem } from './helpers/services.ts'

// Backends ---------------------------------------------------------------------------------------

/** A backend whose stored values can be rewritten raw (framed value in, framed value out). */
type RawBackend = Backend & { rewrite: (id: string, kind: StoredKind, n: number | string, fn: (value: Uint8Array) => Promise<Uint8Array>) => Promise<void> }

const flipLastByte = async (value: Uint8Array): Promise<Uint8Array> => {
  const damaged = Uint8Array.from(value)
  damaged[damaged.length - 1] ^= 0x01
  return damaged
}

const openLevelBackend = async (): Promise<RawBackend> => {
  const dir = await tempDir('accord-contract-')
  const backend: RawBackend = {
    store: await openLevelStore(dir),
    rewrite: async (id, kind, n, fn) => {
      // LevelDB allows one handle per directory: close, rewrite the value raw, reopen.
      await backend.store.close()
      const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
      const k = kind === 'meta' ? keys.metaKey(id) : keys.key(id, kind, n)
      const value = await db.get(k)
      if (value === undefined) throw new Error(`no value at ${k}`)
      await db.put(k, await fn(value))
      await db.close()
      backend.store = await openLevelStore(dir)
    },
    corrupt: (id, kind, n) => backend.rewrite(id, kind, n ?? '', flipLastByte),
    destroy: async () => { await backend.store.close() }
  }
  return backend
}

/**
 * An archive chunk (framed) rewritten in the layout Accord wrote before the keyframe was copied
 * into chunks as stored: one Brotli stream of [from][keyframe][n][(version, record, updates)*].
 */
const inFirstLayout = async (value: Uint8Array): Promise<Uint8Array> => {
  const chunk = decodeChunk(unframe('chunk', value))
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, chunk.from)
  encoding.writeVarUint8Array(enc, chunk.keyframe ?? new Uint8Array(0))
  encoding.writeVarUint(enc, chunk.entries.length)
  chunk.entries.forEach((entry, i) => {
    encoding.writeVarUint(enc, entry.version)
    encoding.writeVarString(enc, chunk.records[i] as string)
    encoding.writeVarUint8Array(enc, encodeUpdates(entry.updates))
  })
  const payload = await compress(encoding.toUint8Array(enc))
  // What tells the layouts apart: a first-layout chunk never starts with 0 (codec.ts).
  expect(payload[0] as number % 2).toBe(1)
  return frame(payload)
}

/** Data archived by an earlier release still reads, and archiving goes on next to it. */
const firstLayoutCase = (name: string, open: () => Promise<RawBackend>): void => {
  it(`${name}: archive chunks written in the first layout still read, next to new ones`, async () => {
    const b = await open()
    try {
      const w = new Writer('wf-old', 5)
      await w.write(b.store, 12)
      await b.store.archive('wf-old', 0, 5)
      await b.store.archive('wf-old', 5, 10)
      await b.rewrite('wf-old', 'arch', 5, inFirstLayout)
      await b.rewrite('wf-old', 'arch', 10, inFirstLayout)
      await w.write(b.store, 5)
      await b.store.archive('wf-old', 10, 15)
      for (const v of range(1, 17)) {
        expect(stateOf(await b.store.replay('wf-old', v)), `state at ${v}`).toBe(w.states[v])
        expect((await b.store.version('wf-old', v))?.version).toBe(v)
      }
      expect((await b.store.versions('wf-old', { limit: 100 })).map(r => r.version)).toEqual(range(1, 17).reverse())
      expect(await b.store.scan()).toEqual([])
    } finally {
      await b.destroy()
    }
  })
}

it('compress starts every stream with an odd byte, whatever its input (chunk layouts rely on it)', async () => {
  for (const size of [0, 1, 64, 4096, 300_000]) expect((await compress(randomBytes(size)))[0] as number % 2, `size ${size}`).toBe(1)
})

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

const openPostgresBackend = async (): Promise<RawBackend & { schema: string, admin: pg.Client, another: () => Promise<Store> }> => {
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
    rewrite: async (id, kind, n, fn) => {
      const { table, column, key } = PG_PAYLOAD[kind]
      const { rows } = await admin.query(`SELECT ${column} AS value FROM "${schema}".${table} WHERE ${key}`, kind === 'meta' ? [id] : [id, n])
      if (rows.length !== 1) throw new Error(`no ${kind} ${String(n)} of ${id}`)
      const value = await fn(new Uint8Array(rows[0].value as Buffer))
      await admin.query(`UPDATE "${schema}".${table} SET ${column} = $${kind === 'meta' ? 2 : 3} WHERE ${key}`, kind === 'meta' ? [id, Buffer.from(value)] : [id, n, Buffer.from(value)])
    },
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
firstLayoutCase('LevelDB', openLevelBackend)
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
  if (pgProblem === null) firstLayoutCase('PostgreSQL', openPostgresBackend)

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

    it('sends commits as prepared statements unless ?preparedStatements=false says not to; refuses another value', async () => {
      const b = await openPostgresBackend()
      backends.push(b)
      // pg's own client, recording the statement names it is asked to run.
      const runWith = async (url: string, id: string): Promise<Set<string>> => {
        const names = new Set<string>()
        class Recording extends pg.Client {
          query (...args: unknown[]): never {
            const config = args[0] as { name?: string }
            if (typeof config === 'object' && config !== null && typeof config.name === 'string') names.add(config.name)
            return (super.query as (...a: unknown[]) => never)(...args)
          }
        }
        const store = await openPostgresStore(url, { schema: b.schema, pool: { Client: Recording as unknown as typeof pg.Client } })
        try {
          const w = new Writer(id)
          await w.write(store, 7)
          expect(stateOf(await store.load(w.id))).toBe(w.states[7])
        } finally {
          await store.close()
        }
        return names
      }
      expect(await runWith(POSTGRES_URL, 'wf-prepared')).toEqual(new Set(['accord_commit_first', 'accord_commit_next']))
      const off = new URL(POSTGRES_URL)
      off.searchParams.set('preparedStatements', 'false')
      expect(await runWith(off.toString(), 'wf-unprepared')).toEqual(new Set())
      off.searchParams.set('preparedStatements', 'no')
      await expect(openPostgresStore(off.toString(), { schema: b.schema })).rejects.toMatchObject({ code: 'STORAGE_FAILURE', message: expect.stringMatching(/preparedStatements must be true or false/) })
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
