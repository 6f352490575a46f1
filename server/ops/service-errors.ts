/**
 * Turns driver errors of the services `accord` talks to (PostgreSQL, Redis, an Accord server over
 * HTTP) into one sentence naming the service, the address and what to check, instead of a bare
 * "connect ECONNREFUSED" or "fetch failed".
 *
 *   await openPostgres(url).catch(err => { throw describePostgresError(url, err) })
 */
import { ServiceError } from './cli-errors.ts'

interface Cause { code?: string, message: string }

/** Every error in the cause chain, and the members of AggregateErrors (dual-stack connects). */
const causes = (err: unknown, out: Cause[] = []): Cause[] => {
  for (let e: unknown = err; e instanceof Error && out.length < 20; e = e.cause) {
    out.push({ code: (e as { code?: string }).code, message: e.message })
    if (e instanceof AggregateError) for (const inner of e.errors) causes(inner, out)
  }
  return out
}

const codeIn = (chain: Cause[], ...codes: string[]): Cause | undefined => chain.find(c => c.code !== undefined && codes.includes(c.code))

/** The URL without its password, for messages and logs. */
export const redact = (url: string): string => {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return url
  }
}

const NETWORK = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']

const network = (what: string, address: string, chain: Cause[]): string | undefined => {
  const c = codeIn(chain, ...NETWORK)
  if (c === undefined) return undefined
  const why = c.code === 'ENOTFOUND' || c.code === 'EAI_AGAIN' ? 'the host name does not resolve' : c.code === 'ECONNREFUSED' ? 'connection refused' : c.code as string
  return `cannot reach ${what} at ${address} (${why}): is it running, and are the host and port right?`
}

export const describePostgresError = (url: string, err: unknown): Error => {
  if (err instanceof ServiceError) return err
  const chain = causes(err)
  const address = redact(url)
  const unreachable = network('PostgreSQL', address, chain)
  if (unreachable !== undefined) return new ServiceError(unreachable, { cause: err })
  const auth = codeIn(chain, '28P01', '28000')
  if (auth !== undefined) return new ServiceError(`PostgreSQL at ${address} refused the login (${auth.message}): check the user and password in --store`, { cause: err })
  const db = codeIn(chain, '3D000')
  if (db !== undefined) return new ServiceError(`PostgreSQL at ${address}: ${db.message}: create it first (createdb), or name an existing database in --store`, { cause: err })
  const denied = codeIn(chain, '42501')
  if (denied !== undefined) return new ServiceError(`PostgreSQL at ${address}: ${denied.message}: the user needs CREATE on the database (Accord creates its schema and tables)`, { cause: err })
  return err instanceof Error ? err : new ServiceError(String(err))
}

export const describeRedisError = (url: string, err: unknown): Error | undefined => {
  const chain = causes(err)
  const address = redact(url)
  const unreachable = network('Redis', address, chain)
  if (unreachable !== undefined) return new ServiceError(unreachable.replace('?', '? (--bus)'), { cause: err })
  // ioredis rejects connect() with only this when the first connection attempt failed.
  if (chain.some(c => /^Connection is closed/.test(c.message))) {
    return new ServiceError(`cannot reach Redis at ${address} (the connection closed before it was ready): is it running, and are the host and port right? (--bus)`, { cause: err })
  }
  const auth = chain.find(c => /NOAUTH|WRONGPASS|invalid password/i.test(c.message))
  if (auth !== undefined) return new ServiceError(`Redis at ${address} refused the login (${auth.message}): check the password in --bus`, { cause: err })
  return undefined
}

/** For `fetch` failures ("fetch failed" with the reason in `cause`). */
export const describeServerError = (url: string, err: unknown): Error => {
  const chain = causes(err)
  const unreachable = network('the Accord server', url, chain)
  if (unreachable !== undefined) return new ServiceError(unreachable.replace('?', '? (--server)'), { cause: err })
  const detail = chain.map(c => c.message).filter(m => m !== 'fetch failed').at(-1) ?? 'unknown error'
  return new ServiceError(`cannot talk to the Accord server at ${url}: ${detail}`, { cause: err })
}
