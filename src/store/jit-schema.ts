/**
 * Fast twins of the model's zod/mini schemas for the Node side. zod/mini objects validate
 * without zod's JIT (which keeps the browser bundle small) and parse a version record ~3x
 * slower than classic zod objects; stores read records on every history page, so they parse
 * through a twin: the same schema with every object rebuilt as a classic (JIT-compiled) zod
 * object. Leaves (strings, numbers, enums, their checks) are shared: the same core code.
 *
 *   const parse = jitted(VersionRecordSchema)
 *   parse.safeParse(json)   // same result as VersionRecordSchema.safeParse(json)
 */
import { z } from 'zod'
import type { $ZodType } from 'zod/v4/core'

const twins = new WeakMap<$ZodType, $ZodType>()

type Def = { type: string, shape?: Record<string, $ZodType>, catchall?: $ZodType, innerType?: $ZodType, element?: $ZodType }

const rebuild = (schema: $ZodType): $ZodType => {
  const def = schema._zod.def as unknown as Def
  switch (def.type) {
    // A strict or passthrough object (none in the model today) stays as it is: z.object strips.
    case 'object': return def.catchall !== undefined ? schema : z.object(Object.fromEntries(Object.entries(def.shape ?? {}).map(([k, v]) => [k, jitted(v)])))
    case 'optional': return z.optional(jitted(def.innerType as $ZodType))
    case 'nullable': return z.nullable(jitted(def.innerType as $ZodType))
    case 'array': return z.array(jitted(def.element as $ZodType))
    default: return schema
  }
}

/** The JIT twin of `schema` (built once per schema); typed as the schema itself. */
export const jitted = <S extends $ZodType>(schema: S): S => {
  let twin = twins.get(schema)
  if (twin === undefined) {
    twin = rebuild(schema)
    twins.set(schema, twin)
  }
  return twin as S
}
