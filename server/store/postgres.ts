/**
 * The PostgreSQL backend (`pg` with a connection pool), for many Accord servers sharing one
 * database. Schema: postgres-migrations.ts (migrated on open). Every payload is stored framed
 * exactly like its LevelDB value (frame.ts, codec.ts), and damage is reported with the LevelDB
 * key name (keys.ts) so `accord verify` output reads the same for both backends.
 *
 * Concurrency: the head column makes version numbers gapless across servers. A commit is ONE
 * statement (so one transaction): it moves `workflows.head` from v - 1 to v and every insert of
 * the version reads from that update's RETURNING, so when another server stored v first nothing
 * is written and commit throws HeadMovedError. Reads that combine several rows run as one
 * statement or in a REPEATABLE READ transaction, so they see one point in time (no torn reads
 * while a workflow is archived). Archive and delete lock the workflow row.
 * Why one file of ~540 lines: the Store interface implemented once, every SQL statement beside the
 * method that runs it; the schema and its migrations are apart (postgres-migrations.ts).
 */
import type pg from 'pg'
import type { $ZodType } from 'zod/v4/core'
import { CorruptDataError, HeadMovedError, StorageError } from '../../src/model/errors.ts'
import { ConflictRecordSchema, SnapshotRecordSchema, VersionRecordSchema, ViolationRecordSchema, type VersionRecord } from '../../src/model/schema.ts'
import { compress, decodeChunk, decodeUpdates, decompress, encodeChunk, encodeUpdates, type Chunk, type EncodedEntry } from '../../src/store/codec.ts'
import { frame, frameJson, unframe } from '../../src/store/frame.ts'
import * as keys from '../../src/store/keys.ts'
import { importOptional } from '../../src/model/optional-dependency.ts'
import { migrate } from './postgres-migrations.ts'
import { archivedRecordsAfter, archivedRecordsThrough, parseArchivedRecord, recordParser, recordText, wrapStorage as wrap } from '../../src/store/records.ts'
import { WorkflowMetaSchema, type Keyframe, type Replay, type Store, type VersionEntry, type WorkflowMeta } from '../../src/store/store.ts'

export interface PostgresStoreOptions {
  /**
   * Schema holding the tables (created if missing). Default: the URL's `?schema=` parameter,
   * else "accord". Separate schemas are separate stores (tests use one each).
   */
  schema?: string
  /** Pool size (default 10). */
  max?: number
  /** Further pg.Pool settings. */
  pool?: pg.PoolConfig
  /**
   * Send the statements run on every commit or reconcile pass (commit, meta, heads) as named
   * (prepared) statements, so each connection parses and plans them once (default true; the
   * URL's `?preparedStatements=false` turns it off too). Turn off behind a pooler that cannot keep
   * prepared statements across transactions (PgBouncer in transaction mode before 1.21).
   */
  preparedStatements?: boolean
}

type Queryable = Pick<pg.PoolClient, 'query'>
type Row = Record<string, unknown>

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** Decodes a stored value; any failure past the checksum is damage too. */
const decode = <T>(key: string, what: string, fn: () => T): T => {
  try {
    return fn()
  } catch (err) {
    if (err instanceof CorruptDataError) throw err
    throw new CorruptDataError(key, `cannot decode ${what}`)
  }
}

const parse = recordParser()

const bytes = (value: unknown): Uint8Array => value as Buffer
const num = (value: unknown): number => Number(value)

/** Splits Accord's own parameters (`?schema=`, `?preparedStatements=`) off the URL (pg would pass unknown ones on). */
const splitUrl = (url: string): { connectionString: string, schema?: string, prepared?: boolean } => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new StorageError('invalid PostgreSQL URL')
  }
  const schema = parsed.searchParams.get('schema') ?? undefined
  const preparedText = parsed.searchParams.get('preparedStatements')
  if (preparedText !== null && preparedText !== 'true' && preparedText !== 'false') {
    throw new StorageError(`invalid PostgreSQL URL: preparedStatements must be true or false, not ${JSON.stringify(preparedText)}`)
  }
  parsed.searchParams.delete('schema')
  parsed.searchParams.delete('preparedStatements')
  return { connectionString: parsed.toString(), schema, prepared: preparedText === null ? undefined : preparedText === 'true' }
}

export const openPostgresStore = async (url: string, options: PostgresStoreOptions = {}): Promise<Store> => {
  const { connectionString, schema: urlSchema, prepared: urlPrepared } = splitUrl(url)
  const schema = options.schema ?? urlSchema ?? 'accord'
  if (!SCHEMA_NAME.test(schema)) throw new StorageError(`invalid PostgreSQL schema name ${JSON.stringify(schema)}`)
  const s = `"${schema}"`
  const t = {
    workflows: `${s}.workflows`,
    log: `${s}.log`,
    versions: `${s}.versions`,
    keyframes: `${s}.keyframes`,
    archive: `${s}.archive`,
    snapshots: `${s}.snapshots`,
    conflicts: `${s}.conflicts`,
    violations: `${s}.violations`
  }
  // pg is an optional peer: loaded here, on first use, so LevelDB users need not install it.
  const { Pool } = (await importOptional('pg', 'PostgreSQL support', () => import('pg'))).default
  // allowExitOnIdle: idle connections never keep a process alive (the server does, while it runs).
  const pool = new Pool({ application_name: 'accord', allowExitOnIdle: true, ...options.pool, connectionString, max: options.max ?? options.pool?.max ?? 10 })
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => {})
  await wrap(`opening PostgreSQL store (schema ${schema})`, () => migrate(pool, schema, s)).catch(async (err: unknown) => {
    await pool.end().catch(() => {})
    throw err
  })

  const query = async (text: string, values?: unknown[], on: Queryable = pool): Promise<Row[]> =>
    (await on.query<Row>(text, values)).rows
  const prepare = options.preparedStatements ?? urlPrepared ?? true
  /**
   * A statement run on every commit or reconcile pass, by name when prepared statements are on:
   * PostgreSQL parses and plans it once per connection (the commit's seven-part statement cost
   * 720 µs of PostgreSQL CPU per commit unnamed, 200 µs named). Its text is fixed per store.
   */
  const named = async (name: string, text: string, values: unknown[]): Promise<Row[]> =>
    prepare ? (await pool.query<Row>({ name, text, values })).rows : query(text, values)

  /** Runs `fn` in one transaction on one connection; rolls back when it throws. */
  const transaction = async <T>(mode: 'write' | 'snapshot', fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect()
    let broken = false
    try {
      await client.query(mode === 'snapshot' ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN')
      const out = await fn(client)
      await client.query('COMMIT')
      return out
    } catch (err) {
      await client.query('ROLLBACK').catch(() => { broken = true })
      throw err
    } finally {
      client.release(broken)
    }
  }

  // Readers ------------------------------------------------------------------------------------

  const metaOf = (id: string, value: Uint8Array): WorkflowMeta => parse(WorkflowMetaSchema, keys.metaKey(id), value)

  const keyframeOf = (id: string, version: number, value: Uint8Array): Keyframe => {
    const k = keys.key(id, 'kf', version)
    return { version, state: decode(k, 'keyframe', () => decompress(unframe(k, value))) }
  }

  const entryOf = (id: string, version: number, value: Uint8Array): VersionEntry => {
    const k = keys.key(id, 'log', version)
    return { version, updates: decode(k, 'log entry', () => decodeUpdates(unframe(k, value))) }
  }

  const chunkOf = (id: string, to: number, value: Uint8Array): Chunk => {
    const k = keys.key(id, 'arch', to)
    return decode(k, 'archive chunk', () => decodeChunk(unframe(k, value)))
  }

  const recordOf = (id: string, version: number, value: Uint8Array): VersionRecord =>
    parse(VersionRecordSchema, keys.key(id, 'ver', version), value)

  /** The archive chunk holding `version`, or null. */
  const readChunk = async (on: Queryable, id: string, version: number): Promise<Chunk | null> => {
    const [row] = await query(`SELECT to_version, chunk FROM ${t.archive} WHERE workflow_id = $1 AND to_version >= $2
      ORDER BY to_version LIMIT 1`, [id, version], on)
    return row === undefined ? null : chunkOf(id, num(row.to_version), bytes(row.chunk))
  }

  const archivedThroughOn = async (on: Queryable, id: string): Promise<number> => {
    const [row] = await query(`SELECT COALESCE(max(to_version), 0) AS v FROM ${t.archive} WHERE workflow_id = $1`, [id], on)
    return num(row?.v ?? 0)
  }

  const getMeta: Store['getMeta'] = id => wrap(`reading meta of ${id}`, async () => {
    const [row] = await named('accord_get_meta', `SELECT meta FROM ${t.workflows} WHERE id = $1`, [id])
    return row === undefined ? null : metaOf(id, bytes(row.meta))
  })

  // The head column is kept equal to meta.head by every write (scan checks it), so no meta is decoded.
  const heads: NonNullable<Store['heads']> = ids => wrap(`reading the heads of ${ids.length} workflows`, async () => {
    const out = new Map<string, number>()
    if (ids.length === 0) return out
    for (const row of await named('accord_heads', `SELECT id, head FROM ${t.workflows} WHERE id = ANY($1::text[])`, [ids])) out.set(String(row.id), num(row.head))
    return out
  })

  // One statement, one snapshot: meta (kind 0), the newest keyframe (1), the log after it (2).
  const LOAD = `WITH kf AS (SELECT version, state FROM ${t.keyframes} WHERE workflow_id = $1 ORDER BY version DESC LIMIT 1)
    SELECT 0 AS kind, 0::bigint AS version, meta AS data FROM ${t.workflows} WHERE id = $1
    UNION ALL SELECT 1, version, state FROM kf
    UNION ALL SELECT 2, version, data FROM ${t.log} WHERE workflow_id = $1 AND version > COALESCE((SELECT version FROM kf), 0)`

  const load: Store['load'] = id => wrap(`loading ${id}`, async () => {
    const rows = await query(LOAD, [id])
    let meta: WorkflowMeta | null = null
    let keyframe: Keyframe | null = null
    const entries: VersionEntry[] = []
    for (const row of rows) {
      const v = num(row.version)
      if (row.kind === 0) meta = metaOf(id, bytes(row.data))
      else if (row.kind === 1) keyframe = keyframeOf(id, v, bytes(row.data))
      else entries.push(entryOf(id, v, bytes(row.data)))
    }
    entries.sort((a, b) => a.version - b.version)
    return { meta, keyframe, entries }
  })

  // The chunk holding the version if it is archived (kind 3), else the keyframe at or before it
  // (1) and the log up to it (2); one statement, so archiving cannot tear it.
  const REPLAY = `WITH kf AS (SELECT version, state FROM ${t.keyframes} WHERE workflow_id = $1 AND version <= $2 ORDER BY version DESC LIMIT 1),
      arch AS (SELECT to_version, chunk FROM ${t.archive} WHERE workflow_id = $1 AND to_version >= $2 ORDER BY to_version LIMIT 1)
    SELECT 3 AS kind, to_version AS version, chunk AS data FROM arch
    UNION ALL SELECT 1, version, state FROM kf WHERE NOT EXISTS (SELECT 1 FROM arch)
    UNION ALL SELECT 2, version, data FROM ${t.log} WHERE workflow_id = $1 AND NOT EXISTS (SELECT 1 FROM arch)
      AND version > COALESCE((SELECT version FROM kf), 0) AND version <= $2`

  const replay: Store['replay'] = (id, version) => wrap(`reading version ${version} of ${id}`, async (): Promise<Replay> => {
    if (version === 0) return { keyframe: null, entries: [] }
    const rows = await query(REPLAY, [id, version])
    const arch = rows.find(r => r.kind === 3)
    if (arch !== undefined) {
      const chunk = chunkOf(id, num(arch.version), bytes(arch.data))
      return {
        keyframe: chunk.keyframe === null ? null : { version: chunk.from, state: chunk.keyframe },
        entries: chunk.entries.filter(e => e.version <= version)
      }
    }
    const kfRow = rows.find(r => r.kind === 1)
    const keyframe = kfRow === undefined ? null : keyframeOf(id, num(kfRow.version), bytes(kfRow.data))
    const entries = rows.filter(r => r.kind === 2).map(r => entryOf(id, num(r.version), bytes(r.data)))
      .sort((a, b) => a.version - b.version)
    const base = keyframe?.version ?? 0
    const contiguous = entries.length === version - base && entries.every((e, i) => e.version === base + i + 1)
    if (!contiguous) throw new CorruptDataError(keys.key(id, 'log', version), 'log entries missing')
    return { keyframe, entries }
  })

  const version: Store['version'] = (id, v) => wrap(`reading record ${v} of ${id}`, async () => {
    const rows = await query(`SELECT 0 AS kind, version, record AS data FROM ${t.versions} WHERE workflow_id = $1 AND version = $2
      UNION ALL (SELECT 1, to_version, chunk FROM ${t.archive} WHERE workflow_id = $1 AND to_version >= $2 ORDER BY to_version LIMIT 1)`, [id, v])
    const hot = rows.find(r => r.kind === 0)
    if (hot !== undefined) return recordOf(id, v, bytes(hot.data))
    const arch = rows.find(r => r.kind === 1)
    if (arch === undefined) return null
    const chunk = chunkOf(id, num(arch.version), bytes(arch.data))
    const i = chunk.entries.findIndex(e => e.version === v)
    return i < 0 ? null : parseArchivedRecord(keys.key(id, 'ver', v), chunk.records[i] as string)
  })

  const versions: Store['versions'] = (id, { before, limit }) => wrap(`listing versions of ${id}`, () =>
    transaction('snapshot', async c => {
      const out: VersionRecord[] = []
      const rows = await query(`SELECT version, record FROM ${t.versions} WHERE workflow_id = $1 AND ($2::bigint IS NULL OR version < $2)
        ORDER BY version DESC LIMIT $3`, [id, before ?? null, limit], c)
      for (const row of rows) out.push(recordOf(id, num(row.version), bytes(row.record)))
      if (out.length >= limit) return out
      // Hot versions are all newer than the archive: continue there, newest chunk first.
      const through = Math.min((before ?? Number.MAX_SAFE_INTEGER) - 1, await archivedThroughOn(c, id))
      return archivedRecordsThrough(id, through, limit, out, v => readChunk(c, id, v))
    }))

  const versionsAfter: Store['versionsAfter'] = (id, after, limit) => wrap(`reading versions of ${id}`, () =>
    transaction('snapshot', async c => {
      const { records: out, next } = await archivedRecordsAfter(id, after, limit, await archivedThroughOn(c, id), v => readChunk(c, id, v))
      if (out.length < limit) {
        const rows = await query(`SELECT version, record FROM ${t.versions} WHERE workflow_id = $1 AND version >= $2
          ORDER BY version LIMIT $3`, [id, next, limit - out.length], c)
        for (const row of rows) out.push(recordOf(id, num(row.version), bytes(row.record)))
      }
      return out
    }))

  const archivedThrough: Store['archivedThrough'] = id => wrap(`reading the archive of ${id}`, () => archivedThroughOn(pool, id))

  const keyframes: Store['keyframes'] = id => wrap(`listing keyframes of ${id}`, async () =>
    (await query(`SELECT version FROM ${t.keyframes} WHERE workflow_id = $1 ORDER BY version`, [id])).map(r => num(r.version)))

  // Writers ------------------------------------------------------------------------------------

  const upsertMeta = `INSERT INTO ${t.workflows} (id, head, meta) VALUES ($1, $2, $3)
    ON CONFLICT (id) DO UPDATE SET head = EXCLUDED.head, meta = EXCLUDED.meta`

  const putMeta: Store['putMeta'] = meta => wrap(`writing meta of ${meta.id}`, async () => {
    await query(upsertMeta, [meta.id, meta.head, frameJson(meta)])
  })

  // `h` moves the head from v - 1 to v (version 1 may also create the row); everything else is
  // inserted FROM h, so a commit that lost the race writes nothing at all.
  const commitSql = (first: boolean): string => `WITH h AS (${first
    ? `INSERT INTO ${t.workflows} AS w (id, head, meta) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET head = EXCLUDED.head, meta = EXCLUDED.meta WHERE w.head = 0 RETURNING w.id`
    : `UPDATE ${t.workflows} SET head = $2, meta = $3 WHERE id = $1 AND head = $2 - 1 RETURNING id`}),
    l AS (INSERT INTO ${t.log} (workflow_id, version, data) SELECT id, $2, $4 FROM h
      ON CONFLICT (workflow_id, version) DO UPDATE SET data = EXCLUDED.data),
    r AS (INSERT INTO ${t.versions} (workflow_id, version, record) SELECT id, $2, $5 FROM h
      ON CONFLICT (workflow_id, version) DO UPDATE SET record = EXCLUDED.record),
    k AS (INSERT INTO ${t.keyframes} (workflow_id, version, state) SELECT id, $2, $6::bytea FROM h WHERE $6::bytea IS NOT NULL
      ON CONFLICT (workflow_id, version) DO UPDATE SET state = EXCLUDED.state),
    c AS (INSERT INTO ${t.conflicts} (workflow_id, id, record) SELECT h.id, x.n, x.data FROM h, unnest($7::bigint[], $8::bytea[]) AS x(n, data)
      ON CONFLICT (workflow_id, id) DO UPDATE SET record = EXCLUDED.record),
    v AS (INSERT INTO ${t.violations} (workflow_id, id, record) SELECT h.id, x.n, x.data FROM h, unnest($9::bigint[], $10::bytea[]) AS x(n, data)
      ON CONFLICT (workflow_id, id) DO UPDATE SET record = EXCLUDED.record)
    SELECT count(*)::int AS moved FROM h`
  const COMMIT_FIRST = commitSql(true)
  const COMMIT_NEXT = commitSql(false)

  const commit: Store['commit'] = (id, c) => wrap(`committing version ${c.record.version} of ${id}`, async () => {
    const v = c.record.version
    const record = frameJson(c.record)
    const conflicts = c.conflicts ?? []
    const violations = c.violations ?? []
    const [row] = await named(v === 1 ? 'accord_commit_first' : 'accord_commit_next', v === 1 ? COMMIT_FIRST : COMMIT_NEXT, [
      id, v, frameJson(c.meta), frame(encodeUpdates(c.updates)), record,
      c.keyframe === undefined ? null : frame(await compress(c.keyframe)),
      conflicts.map(x => x.id), conflicts.map(x => frameJson(x)),
      violations.map(x => x.id), violations.map(x => frameJson(x))
    ])
    if (row?.moved === 1) return
    const [now] = await query(`SELECT w.head, r.record FROM ${t.workflows} w
      LEFT JOIN ${t.versions} r ON r.workflow_id = w.id AND r.version = $2 WHERE w.id = $1`, [id, v])
    const head = num(now?.head ?? 0)
    // A retry of a commit that did land (its reply was lost) is a no-op; anything else means
    // another writer stored this version first.
    if (head === v && now?.record != null && Buffer.from(record).equals(bytes(now.record))) return
    throw new HeadMovedError(id, v - 1, head)
  })

  const archive: Store['archive'] = (id, from, to) => wrap(`archiving ${id} (${from}, ${to}]`, () =>
    transaction('write', async c => {
      // Serializes archivers of this workflow (other servers run retention too).
      await query(`SELECT 1 FROM ${t.workflows} WHERE id = $1 FOR UPDATE`, [id], c)
      if (await archivedThroughOn(c, id) >= to) return
      let storedKeyframe: Uint8Array | null = null
      if (from !== 0) {
        const [kf] = await query(`SELECT state FROM ${t.keyframes} WHERE workflow_id = $1 AND version = $2`, [id, from], c)
        if (kf === undefined) throw new StorageError(`no keyframe at version ${from} of ${id}`)
        storedKeyframe = unframe(keys.key(id, 'kf', from), bytes(kf.state))
      }
      const rows = await query(`SELECT l.version, l.data, r.record FROM ${t.log} l
        LEFT JOIN ${t.versions} r ON r.workflow_id = l.workflow_id AND r.version = l.version
        WHERE l.workflow_id = $1 AND l.version > $2 AND l.version <= $3 ORDER BY l.version`, [id, from, to], c)
      // The keyframe, entries and records are copied as stored (their frames' checksums vouch
      // for them), not decoded and re-encoded: readers of the chunk validate them.
      const entries: EncodedEntry[] = []
      const records: string[] = []
      for (const row of rows) {
        const v = num(row.version)
        const recordKey = keys.key(id, 'ver', v)
        if (row.record === null) throw new CorruptDataError(recordKey, 'version record missing')
        entries.push({ version: v, encoded: unframe(keys.key(id, 'log', v), bytes(row.data)) })
        records.push(recordText(recordKey, unframe(recordKey, bytes(row.record))))
      }
      // A chunk must hold the whole range, or replays from it would be wrong.
      if (entries.length !== to - from || entries.some((e, i) => e.version !== from + i + 1)) {
        throw new CorruptDataError(keys.key(id, 'log', to), `log entries of (${from}, ${to}] missing`)
      }
      const chunk = frame(await encodeChunk({ from, storedKeyframe, records, entries }))
      await query(`WITH dl AS (DELETE FROM ${t.log} WHERE workflow_id = $1 AND version > $2 AND version <= $3),
          dv AS (DELETE FROM ${t.versions} WHERE workflow_id = $1 AND version > $2 AND version <= $3),
          dk AS (DELETE FROM ${t.keyframes} WHERE workflow_id = $1 AND version = $2 AND $2 <> 0)
        INSERT INTO ${t.archive} (workflow_id, to_version, from_version, chunk) VALUES ($1, $3, $2, $4)`, [id, from, to, chunk], c)
    }))

  const putSnapshot: Store['putSnapshot'] = record => wrap(`writing snapshot ${record.id}`, async () => {
    await query(`INSERT INTO ${t.snapshots} (workflow_id, id, record) VALUES ($1, $2, $3)
      ON CONFLICT (workflow_id, id) DO UPDATE SET record = EXCLUDED.record`, [record.workflowId, record.id, frameJson(record)])
  })

  const getSnapshot: Store['getSnapshot'] = (id, snapshotId) => wrap(`reading snapshot ${snapshotId}`, async () => {
    const [row] = await query(`SELECT record FROM ${t.snapshots} WHERE workflow_id = $1 AND id = $2`, [id, snapshotId])
    return row === undefined ? null : parse(SnapshotRecordSchema, keys.key(id, 'snap', snapshotId), bytes(row.record))
  })

  const listSnapshots: Store['listSnapshots'] = id => wrap(`listing snapshots of ${id}`, async () => {
    const rows = await query(`SELECT id, record FROM ${t.snapshots} WHERE workflow_id = $1 ORDER BY id`, [id])
    return rows.map(r => parse(SnapshotRecordSchema, keys.key(id, 'snap', r.id as string), bytes(r.record)))
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  })

  const deleteSnapshots: Store['deleteSnapshots'] = (id, ids) => wrap(`deleting snapshots of ${id}`, async () => {
    if (ids.length > 0) await query(`DELETE FROM ${t.snapshots} WHERE workflow_id = $1 AND id = ANY($2::text[])`, [id, ids])
  })

  const putConflict: Store['putConflict'] = (record, meta) => wrap(`writing conflict ${record.id}`, async () => {
    const put = `INSERT INTO ${t.conflicts} (workflow_id, id, record) VALUES ($1, $2, $3)
      ON CONFLICT (workflow_id, id) DO UPDATE SET record = EXCLUDED.record`
    if (meta === undefined) await query(put, [record.workflowId, record.id, frameJson(record)])
    else {
      await query(`WITH m AS (INSERT INTO ${t.workflows} (id, head, meta) VALUES ($4, $5, $6)
        ON CONFLICT (id) DO UPDATE SET head = EXCLUDED.head, meta = EXCLUDED.meta) ${put}`,
      [record.workflowId, record.id, frameJson(record), meta.id, meta.head, frameJson(meta)])
    }
  })

  const listRecords = async <T>(table: string, kind: keys.Kind, schema: $ZodType<T>, id: string): Promise<T[]> =>
    (await query(`SELECT id, record FROM ${table} WHERE workflow_id = $1 ORDER BY id`, [id]))
      .map(r => parse(schema, keys.key(id, kind, num(r.id)), bytes(r.record)))

  const listConflicts: Store['listConflicts'] = id => wrap(`listing conflicts of ${id}`, () =>
    listRecords(t.conflicts, 'conf', ConflictRecordSchema, id))

  const listViolations: Store['listViolations'] = id => wrap(`listing violations of ${id}`, () =>
    listRecords(t.violations, 'viol', ViolationRecordSchema, id))

  const countLog: Store['countLog'] = id => wrap(`counting ${id}`, async () => {
    const [row] = await query(`SELECT count(*)::int AS n FROM ${t.log} WHERE workflow_id = $1`, [id])
    return num(row?.n ?? 0)
  })

  const listWorkflows: Store['listWorkflows'] = () => wrap('listing workflows', async () =>
    (await query(`SELECT id, meta FROM ${t.workflows} ORDER BY id`)).map(r => metaOf(r.id as string, bytes(r.meta))))

  /** How scan reads one table: payload as `v`; `problem` decodes it as its reader would. */
  interface ScanTable {
    table: string
    /** The row key after the workflow id (none: the workflows table). */
    key?: { col: string, type: 'bigint' | 'text', kind: keys.Kind }
    extra?: string
    payload: string
    problem: (id: string, n: string, v: Uint8Array, row: Row) => string | undefined | void
  }
  const SCAN: ScanTable[] = [
    {
      table: t.workflows, payload: 'meta', extra: ', head', problem: (id, _n, v, row) => {
        const meta = metaOf(id, v)
        if (meta.id !== id) return `meta names workflow ${meta.id}`
        if (meta.head !== num(row.head)) return `meta head ${meta.head} differs from the head column ${num(row.head)}`
      }
    },
    { table: t.log, key: { col: 'version', type: 'bigint', kind: 'log' }, payload: 'data', problem: (id, n, v) => { entryOf(id, num(n), v) } },
    {
      table: t.versions, key: { col: 'version', type: 'bigint', kind: 'ver' }, payload: 'record', problem: (id, n, v) => {
        const record = recordOf(id, num(n), v)
        if (record.version !== num(n) || record.workflowId !== id) return `holds the record of ${record.workflowId}@${record.version}`
      }
    },
    { table: t.keyframes, key: { col: 'version', type: 'bigint', kind: 'kf' }, payload: 'state', problem: (id, n, v) => { keyframeOf(id, num(n), v) } },
    {
      table: t.archive, key: { col: 'to_version', type: 'bigint', kind: 'arch' }, payload: 'chunk', extra: ', from_version', problem: (id, n, v, row) => {
        const chunk = chunkOf(id, num(n), v)
        const last = chunk.entries[chunk.entries.length - 1]?.version
        if (chunk.from !== num(row.from_version) || last !== num(n)) {
          return `chunk holds versions (${chunk.from}, ${String(last)}], not (${num(row.from_version)}, ${n}]`
        }
      }
    },
    { table: t.snapshots, key: { col: 'id', type: 'text', kind: 'snap' }, payload: 'record', problem: (id, n, v) => { parse(SnapshotRecordSchema, keys.key(id, 'snap', n), v) } },
    { table: t.conflicts, key: { col: 'id', type: 'bigint', kind: 'conf' }, payload: 'record', problem: (id, n, v) => { parse(ConflictRecordSchema, keys.key(id, 'conf', num(n)), v) } },
    { table: t.violations, key: { col: 'id', type: 'bigint', kind: 'viol' }, payload: 'record', problem: (id, n, v) => { parse(ViolationRecordSchema, keys.key(id, 'viol', num(n)), v) } }
  ]

  /**
   * Every row of one table with the LevelDB key it stands for, paged by primary key so a large
   * store is never read into memory at once.
   */
  async function * rowsOf ({ table, key, extra = '', payload }: ScanTable, on: Queryable): AsyncGenerator<{ id: string, n: string, k: string, v: Uint8Array, row: Row }> {
    const PAGE = 500
    const sql = key === undefined
      ? `SELECT id AS wid, '' AS k, ${payload} AS v${extra} FROM ${table} WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT ${PAGE}`
      : `SELECT workflow_id AS wid, ${key.col}::text AS k, ${payload} AS v${extra} FROM ${table}
         WHERE $1::text IS NULL OR (workflow_id, ${key.col}) > ($1, $2::${key.type}) ORDER BY workflow_id, ${key.col} LIMIT ${PAGE}`
    let after: [string | null, string | null] = [null, null]
    for (;;) {
      const rows = await query(sql, key === undefined ? [after[0]] : after, on)
      for (const row of rows) {
        const id = row.wid as string
        const n = row.k as string
        yield { id, n, k: key === undefined ? keys.metaKey(id) : keys.key(id, key.kind, key.type === 'text' ? n : num(n)), v: bytes(row.v), row }
      }
      if (rows.length < PAGE) return
      const end = rows[rows.length - 1] as Row
      after = [end.wid as string, end.k as string]
    }
  }

  const scan: Store['scan'] = () => wrap('scanning the store', async () => {
    const problems: Array<{ key: string, problem: string }> = []
    for (const table of SCAN) {
      for await (const { id, n, k, v, row } of rowsOf(table, pool)) {
        try {
          const found = table.problem(id, n, v, row)
          if (typeof found === 'string') problems.push({ key: k, problem: found })
        } catch (err) {
          problems.push({ key: k, problem: (err as Error).message })
        }
      }
    }
    return problems
  })

  /**
   * Every row as the LevelDB record it stands for (rows hold the same bytes as LevelDB values),
   * all read in one REPEATABLE READ transaction: a backup is one point in time while servers
   * keep writing, and it restores into a LevelDB data directory.
   */
  async function * exportRecords (): AsyncGenerator<[string, Uint8Array]> {
    const client = await pool.connect()
    let done = false
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      for (const table of SCAN) {
        for await (const { k, v } of rowsOf(table, client)) yield [k, v]
      }
      await client.query('COMMIT')
      done = true
    } finally {
      // A reader that stopped early (a backup client went away) leaves the transaction open.
      const broken = !done && await client.query('ROLLBACK').then(() => false, () => true)
      client.release(broken)
    }
  }

  const deleteWorkflow: Store['deleteWorkflow'] = id => wrap(`deleting ${id}`, async () => {
    await query(`WITH l AS (DELETE FROM ${t.log} WHERE workflow_id = $1),
        r AS (DELETE FROM ${t.versions} WHERE workflow_id = $1),
        k AS (DELETE FROM ${t.keyframes} WHERE workflow_id = $1),
        a AS (DELETE FROM ${t.archive} WHERE workflow_id = $1),
        s AS (DELETE FROM ${t.snapshots} WHERE workflow_id = $1),
        c AS (DELETE FROM ${t.conflicts} WHERE workflow_id = $1),
        v AS (DELETE FROM ${t.violations} WHERE workflow_id = $1)
      DELETE FROM ${t.workflows} WHERE id = $1`, [id])
  })

  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await pool.end()
  }

  return {
    load, getMeta, heads, putMeta, commit, replay, version, versions, versionsAfter, archive, archivedThrough, keyframes,
    putSnapshot, getSnapshot, listSnapshots, deleteSnapshots, putConflict, listConflicts, listViolations,
    countLog, listWorkflows, scan, exportRecords, deleteWorkflow, close
  }
}
