import { InvalidJsonError } from './errors.ts'

export type JsonPrimitive = string | number | boolean | null
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

export const isPlainObject = (value: unknown): value is Record<string, unknown> => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

const escapeToken = (token: string | number): string =>
  String(token).replace(/~/g, '~0').replace(/\//g, '~1')

export const toPointer = (path: ReadonlyArray<string | number>): string =>
  path.map(t => '/' + escapeToken(t)).join('')

/**
 * Throws `InvalidJsonError` unless `value` is plain JSON. Object properties whose value is
 * `undefined` count as absent (as in JSON.stringify); everywhere else `undefined` is an error.
 */
export const assertJson = (value: unknown, path: Array<string | number> = []): void => {
  visit(value, path, new Set())
}

const visit = (value: unknown, path: Array<string | number>, ancestors: Set<object>): void => {
  const fail = (reason: string): never => { throw new InvalidJsonError(toPointer(path), reason) }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) fail(`${value} is not a finite number`)
      return
    case 'undefined':
      return fail('undefined')
    case 'object':
      break
    default:
      return fail(`a ${typeof value} is not JSON`)
  }
  if (value === null) return
  if (ancestors.has(value)) fail('cycle')
  ancestors.add(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) fail(`sparse array (hole at index ${i})`)
      path.push(i)
      visit(value[i], path, ancestors)
      path.pop()
    }
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      const child = value[key]
      if (child === undefined) continue
      path.push(key)
      visit(child, path, ancestors)
      path.pop()
    }
  } else {
    const name = (value as object).constructor?.name ?? 'unknown'
    fail(`class instance (${name}) is not JSON`)
  }
  ancestors.delete(value)
}

export const deepEqual = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const ak = Object.keys(a).filter(k => (a as Record<string, unknown>)[k] !== undefined)
  const bk = Object.keys(b).filter(k => (b as Record<string, unknown>)[k] !== undefined)
  if (ak.length !== bk.length) return false
  for (const k of ak) {
    if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false
  }
  return true
}

/** Deep-freezes a JSON value so a cached snapshot cannot be mutated by accident. */
export const deepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
