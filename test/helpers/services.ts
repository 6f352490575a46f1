/**
 * PostgreSQL and Redis for the scale-out suites. When they cannot be reached the suites are
 * skipped with the reason printed, except with ACCORD_REQUIRE_SERVICES=1 (CI), where they fail.
 */
import { randomBytes } from 'node:crypto'
import net from 'node:net'

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

/** Why the services suites cannot run here, or null when they can (or must). */
export const servicesMissing = async (): Promise<string | null> => {
  const missing: string[] = []
  if (!await reachable(POSTGRES_URL, 5432)) missing.push(`PostgreSQL at ${POSTGRES_URL}`)
  if (!await reachable(REDIS_URL, 6379)) missing.push(`Redis at ${REDIS_URL}`)
  if (missing.length === 0 || process.env.ACCORD_REQUIRE_SERVICES === '1') return null
  return `cannot reach ${missing.join(' and ')} (set ACCORD_REQUIRE_SERVICES=1 to fail instead)`
}

/** A unique name for one test's PostgreSQL schema and Redis key prefix. */
export const uniqueName = (label: string): string => `accord_${label}_${randomBytes(5).toString('hex')}`
