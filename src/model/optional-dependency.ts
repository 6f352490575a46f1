/**
 * Loads an optional peer dependency (pg, ioredis, the MCP SDK) on first use, so code that never asks for
 * PostgreSQL, Redis or MCP never loads (or needs) them:
 *
 *   const pg = await importOptional('pg', 'PostgreSQL support', () => import('pg'))
 *
 * A package that is not installed becomes a MissingDependencyError naming it; any other failure
 * (a broken install, an error thrown while the module loads) passes through unchanged.
 */
import { MissingDependencyError } from './errors.ts'

const NOT_FOUND = new Set(['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND'])

/** True when `err` says the package itself cannot be found (not one of its own imports). */
const isMissing = (err: unknown, name: string): boolean => {
  const e = err as { code?: unknown, message?: unknown } | null
  if (e === null || typeof e !== 'object' || !NOT_FOUND.has(e.code as string)) return false
  const message = String(e.message)
  return message.includes(`'${name}'`) || message.includes(`"${name}"`)
}

export const importOptional = async <T>(name: string, feature: string, load: () => Promise<T>): Promise<T> => {
  try {
    return await load()
  } catch (err) {
    if (isMissing(err, name)) throw new MissingDependencyError(name, feature, { cause: err })
    throw err
  }
}
