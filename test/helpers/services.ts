/**
 * PostgreSQL and Redis for the scale-out suites. When they cannot be reached the suites are
 * skipped with the reason printed, except with ACCORD_REQUIRE_SERVICES=1 (CI), where they fail.
 */
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import pg from 'pg'
import { Redis } from 'ioredis'

export const POSTGRES_URL = process.env.ACCORD_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REDIS_URL = process.env.ACCORD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

const reachable = (url: string, fallbackPort: number): Promise<boolean> => new Promise(resolve => {
  const u = new URL(url)
  const socket = net.connect({ host: u.hostname, port: Number(u.port === '' ? fallbackPort : u.port) })
  socket.setTimeout(2000)
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('timeout', () => { socket.destroy(); resolve(false) })
  socket.once('error', () => { resolve(false) })
})

/** Why PostgreSQL cannot be used (null: it can), found by running a query. */
export const postgresProblem = async (): Promise<string | null> => {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return null
  } catch (err) {
    return `cannot reach PostgreSQL at ${POSTGRES_URL}: ${(err as Error).message}`
  } finally {
    await client.end().catch(() => {})
  }
}

/** Why the services suites cannot run here, or null when they can (or must). */
export const servicesMissing = async (): Promise<string | null> => {
  const missing: string[] = []
  const pgProblem = await postgresProblem()
  if (pgProblem !== null) missing.push(pgProblem)
  if (!await reachable(REDIS_URL, 6379)) missing.push(`cannot reach Redis at ${REDIS_URL}`)
  if (missing.length === 0 || process.env.ACCORD_REQUIRE_SERVICES === '1') return null
  return `${missing.join('; ')} (set ACCORD_REQUIRE_SERVICES=1 to fail instead)`
}

/** Removes what a test (or benchmark run) left in PostgreSQL and Redis. */
export const dropServiceData = async ({ schema, redisPrefix }: { schema?: string, redisPrefix?: string }): Promise<void> => {
  if (schema !== undefined && schema !== '') {
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    } finally {
      await client.end()
    }
  }
  if (redisPrefix !== undefined && redisPrefix !== '') {
    const redis = new Redis(REDIS_URL)
    try {
      const keys = await redis.keys(`${redisPrefix}*`)
      if (keys.length > 0) await redis.del(...keys)
    } finally {
      await redis.quit()
    }
  }
}

/** A unique name for one test's PostgreSQL schema and Redis key prefix. */
export const uniqueName = (label: string): string => `accord_${label}_${randomBytes(5).toString('hex')}`

/** The server id holding a workflow's writer lease in the cluster under `redisPrefix`, or null. */
export const writerOf = async (redisPrefix: string, workflowId: string): Promise<string | null> => {
  const redis = new Redis(REDIS_URL)
  try {
    return await redis.get(`${redisPrefix}writer:${workflowId}`)
  } finally {
    await redis.quit()
  }
}

/** One unlabelled counter or gauge from a server's /metrics. */
export const metricOf = async (base: string, name: string): Promise<number> => {
  const text = await (await fetch(`${base}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith(`${name} `))
  if (line === undefined) throw new Error(`${base}/metrics has no ${name}`)
  return Number(line.slice(name.length + 1))
}

/** The cluster server id a server reports in /readyz. */
export const serverIdOf = async (base: string): Promise<string> => {
  const body = await (await fetch(`${base}/readyz`)).json() as { serverId?: string }
  if (body.serverId === undefined) throw new Error(`${base} is not in cluster mode`)
  return body.serverId
}
