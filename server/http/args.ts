/**
 * Checks of HTTP API arguments (query parameters, headers, body numbers): a wrong one is a 400
 * that names the argument, what is allowed and what was sent.
 *
 *   intArg('?limit', url.searchParams.get('limit'), 1, 1000)   // 400 for 'abc', '0', '5000'
 *   ifMatch(req.headers['if-match'])                          // null for * / absent, else versions
 */
import { AccordError } from '../../src/model/errors.ts'

export class InvalidArgumentError extends AccordError {
  constructor (message: string, details?: unknown) {
    super('INVALID_REQUEST', message, details)
    this.name = 'InvalidArgumentError'
  }
}

/**
 * An integer argument in [min, max]: a 400 naming the argument, the allowed range and what was
 * sent (not zod's "expected number, received NaN", not a silent clamp).
 */
export const intArg = (name: string, value: unknown, min: number, max: number, maxName?: string): number => {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN
  if (Number.isSafeInteger(n) && n >= min && n <= max) return n
  const range = `an integer from ${min} to ${max}${maxName === undefined ? '' : ` (${maxName})`}`
  throw new InvalidArgumentError(`${name} must be ${range}, got ${JSON.stringify(value)}`, { parameter: name, min, max, got: value ?? null })
}

/**
 * If-Match: `*` (null: any version) or a list of quoted versions (`"3"`, `W/"3"`). Anything else
 * is a malformed header (400), not a moved version (412).
 */
export const ifMatch = (header: string | undefined): number[] | null => {
  if (header === undefined || header.trim() === '*') return null
  const tags = header.split(',').map(t => t.trim())
  const versions = tags.map(t => /^(?:W\/)?"(\d+)"$/.exec(t)?.[1])
  if (tags.length === 0 || versions.some(v => v === undefined)) {
    throw new InvalidArgumentError(`If-Match must be * or a quoted version such as "3" (the ETag of a read), got ${header}`, { header: 'If-Match', got: header })
  }
  return versions.map(Number)
}
