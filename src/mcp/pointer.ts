/**
 * Reads the value at an RFC 6901 JSON pointer, with NOT_FOUND for a missing one.
 *
 *   valueAt({ a: [1, 2] }, '/a/1')   // 2
 */
import { AccordError } from '../model/errors.ts'
import type { JsonValue } from '../model/json.ts'

export const valueAt = (root: JsonValue, pointer: string): JsonValue => {
  if (pointer === '') return root
  if (!pointer.startsWith('/')) throw new AccordError('INVALID_REQUEST', `a JSON pointer starts with /: ${pointer}`)
  let node: JsonValue = root
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    const next: JsonValue | undefined = Array.isArray(node)
      ? (/^(0|[1-9]\d*)$/.test(key) ? node[Number(key)] : undefined)
      : node !== null && typeof node === 'object' && Object.hasOwn(node, key) ? node[key] : undefined
    if (next === undefined) throw new AccordError('NOT_FOUND', `no value at ${pointer}`, { path: pointer })
    node = next
  }
  return node
}
