/**
 * The PostgreSQL schema, as numbered migrations. `migrate` runs on every start: it takes an
 * advisory lock (so servers starting together do not race), creates the schema and the
 * `accord_migrations` table if needed, applies the migrations newer than the recorded version
 * in one transaction, and refuses a schema written by a newer Accord.
 *
 * Every payload column holds the same framed bytes as the LevelDB value of the matching key
 * (frame.ts: format byte + CRC-32, then the codec.ts encoding), so damage is detected on read the
 * same way. Ids are `COLLATE "C"`, so listings sort bytewise like LevelDB keys.
 */
import type { Pool } from 'pg'
import { StorageError } from '../../src/model/errors.ts'

export interface Migration {
  version: number
  name: string
  /** SQL for the quoted schema name `s` (several statements allowed). */
  sql: (s: string) => string
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'workflows, log, versions, keyframes, archive, snapshots, conflicts, violations',
    sql: s => `
      CREATE TABLE ${s}.workflows (
        id text COLLATE "C" PRIMARY KEY,
        -- Newest version; commits move it from v - 1 to v and nothing else does (gapless).
        head bigint NOT NULL CHECK (head >= 0),
        -- WorkflowMeta JSON, framed.
        meta bytea NOT NULL
      );
      CREATE TABLE ${s}.log (
        workflow_id text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (workflow_id, version)
      );
      CREATE TABLE ${s}.versions (
        workflow_id text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (workflow_id, version)
      );
      CREATE TABLE ${s}.keyframes (
        workflow_id text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        state bytea NOT NULL,
        PRIMARY KEY (workflow_id, version)
      );
      CREATE TABLE ${s}.archive (
        workflow_id text COLLATE "C" NOT NULL,
        to_version bigint NOT NULL,
        from_version bigint NOT NULL,
        chunk bytea NOT NULL,
        PRIMARY KEY (workflow_id, to_version)
      );
      CREATE TABLE ${s}.snapshots (
        workflow_id text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (workflow_id, id)
      );
      CREATE TABLE ${s}.conflicts (
        workflow_id text COLLATE "C" NOT NULL,
        id bigint NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (workflow_id, id)
      );
      CREATE TABLE ${s}.violations (
        workflow_id text COLLATE "C" NOT NULL,
        id bigint NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (workflow_id, id)
      );
      -- Keyframes and archive chunks are Brotli already: do not let TOAST compress them again.
      ALTER TABLE ${s}.keyframes ALTER COLUMN state SET STORAGE EXTERNAL;
      ALTER TABLE ${s}.archive ALTER COLUMN chunk SET STORAGE EXTERNAL;
    `
  }
]

export const LATEST = Math.max(...migrations.map(m => m.version))

/** Brings the schema up to LATEST; returns the version it was at before. */
export const migrate = async (pool: Pool, schema: string, quoted: string): Promise<number> => {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`accord-migrate:${schema}`])
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`)
    await client.query(`CREATE TABLE IF NOT EXISTS ${quoted}.accord_migrations (
      version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
    const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${quoted}.accord_migrations`)
    const current = rows[0]?.v ?? 0
    if (current > LATEST) {
      throw new StorageError(`PostgreSQL schema ${schema} is at migration ${current}, newer than this Accord knows (${LATEST})`)
    }
    for (const m of migrations.filter(m => m.version > current).sort((a, b) => a.version - b.version)) {
      await client.query(m.sql(quoted))
      await client.query(`INSERT INTO ${quoted}.accord_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name])
    }
    await client.query('COMMIT')
    return current
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
