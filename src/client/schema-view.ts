/**
 * The state an SDK handle shows when it has a schema: the stored JSON with the schema's
 * parse-time results laid over it (`.default([])`, `.catch`, transforms), so `state` and the
 * draft of `update` match `z.output` of the schema before anyone wrote the defaults.
 *
 *   schemaView(z.object({ tasks: z.array(z.string()).default([]) }), { other: 1 })
 *   // -> { other: 1, tasks: [] }
 *
 * Keys the schema does not know (z.object strips them) are kept, keys stay in sorted order like
 * every state, and a state the schema rejects, or turns into non-JSON, is shown as stored.
 */
import type { z } from 'zod'
import { assertJson, isPlainObject, type JsonObject, type JsonValue } from '../model/json.ts'

/** `parsed` over `raw`: objects merge key by key (sorted), equal-length arrays element by element. */
const overlay = (raw: unknown, parsed: JsonValue): JsonValue => {
  if (isPlainObject(parsed)) {
    const base = isPlainObject(raw) ? raw : {}
    const out: JsonObject = {}
    for (const key of Array.from(new Set([...Object.keys(base), ...Object.keys(parsed)])).sort()) {
      out[key] = key in parsed ? overlay(base[key], parsed[key] as JsonValue) : base[key] as JsonValue
    }
    return out
  }
  if (Array.isArray(parsed) && Array.isArray(raw) && raw.length === parsed.length) return parsed.map((v, i) => overlay(raw[i], v))
  return parsed
}

export const schemaView = (schema: z.ZodType | undefined, raw: JsonObject): JsonObject => {
  if (schema === undefined) return raw
  const result = schema.safeParse(raw)
  if (!result.success || !isPlainObject(result.data)) return raw
  try {
    assertJson(result.data)
  } catch {
    return raw
  }
  return overlay(raw, result.data as JsonValue) as JsonObject
}

/**
 * `next` with every subtree that equals the one at the same place in `prev` replaced by `prev`'s
 * (so a rebuilt view keeps the identity of what did not change, as the raw snapshot does).
 */
export const shareUnchanged = (prev: unknown, next: unknown): unknown => {
  if (Object.is(prev, next)) return prev
  if (Array.isArray(prev) && Array.isArray(next)) {
    let same = prev.length === next.length
    const out = next.map((value, i) => {
      const shared = shareUnchanged(prev[i], value)
      if (shared !== prev[i]) same = false
      return shared
    })
    return same ? prev : out
  }
  if (isPlainObject(prev) && isPlainObject(next)) {
    const keys = Object.keys(next)
    let same = keys.length === Object.keys(prev).length
    const out: JsonObject = {}
    for (const key of keys) {
      const shared = shareUnchanged(prev[key], next[key]) as JsonValue
      if (!(key in prev) || shared !== prev[key]) same = false
      out[key] = shared
    }
    return same ? prev : out
  }
  return next
}
