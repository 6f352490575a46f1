/**
 * What the saver keeps in a workflow's state, as zod schemas, and how a value becomes a stored
 * blob. Values that are plain JSON are stored as they are (`{ json }`), so any agent, `accord
 * get`, history and diff read them; others go through the saver's `serde`: when its bytes are JSON
 * text they are stored parsed (`{ serde: 'json', json }`, still readable), else as base64
 * (`{ serde, base64 }`).
 *
 *   const blob = await toBlob(serde, value)
 *   const again = await fromBlob(serde, blob)
 */
import { z } from 'zod'
import { fromBase64, toBase64 } from 'lib0/buffer'
import type { SerializerProtocol } from '@langchain/langgraph-checkpoint'
import { assertJson, type JsonValue } from '../model/json.ts'
import { CorruptDataError } from '../model/errors.ts'

export const BlobSchema = z.union([
  z.object({ json: z.unknown() }).strict(),
  z.object({ serde: z.string(), json: z.unknown() }).strict(),
  z.object({ serde: z.string(), base64: z.string() }).strict()
])
export type Blob = z.infer<typeof BlobSchema>

/** One checkpoint: the checkpoint minus its channel values (those are blobs by version). */
export const CheckpointRecordSchema = z.object({
  parent: z.string().nullable(),
  step: z.number().nullable(),
  source: z.string().nullable(),
  checkpoint: BlobSchema,
  metadata: BlobSchema,
  /**
   * channel -> key of its value under the namespace's `blobs[channel]`: the channel version, or
   * `<version>~<checkpoint id>` when a fork reached the same version with another value.
   */
  channels: z.record(z.string(), z.string())
})
export type CheckpointRecord = z.infer<typeof CheckpointRecordSchema>

/** One pending write of a task, keyed `<taskId>:<idx>` under its checkpoint id. */
export const WriteRecordSchema = z.object({
  task: z.string(),
  idx: z.number().int(),
  channel: z.string(),
  path: z.string(),
  value: BlobSchema
})
export type WriteRecord = z.infer<typeof WriteRecordSchema>

/** One checkpoint namespace ('' is the root graph, others are subgraphs). */
export const NamespaceRecordSchema = z.object({
  checkpoints: z.record(z.string(), CheckpointRecordSchema).default({}),
  /** channel -> blob key -> value: a value is stored once, and checkpoints that keep it share it. */
  blobs: z.record(z.string(), z.record(z.string(), BlobSchema)).default({}),
  /** checkpoint id -> `<taskId>:<idx>` -> write. */
  writes: z.record(z.string(), z.record(z.string(), WriteRecordSchema)).default({})
})
export type NamespaceRecord = z.infer<typeof NamespaceRecordSchema>

/** The `langgraph` key of the workflow state. */
export const ThreadRecordSchema = z.object({
  thread_id: z.string(),
  /** Id of the newest checkpoint put in the root namespace. */
  head: z.string().optional(),
  /** The root graph's channel values at `head`, for people and other agents (never read back). */
  values: z.record(z.string(), z.unknown()).optional(),
  namespaces: z.record(z.string(), NamespaceRecordSchema).default({})
})
export type ThreadRecord = z.infer<typeof ThreadRecordSchema>

/** Where the saver's record lives in the workflow state. */
export const STATE_KEY = 'langgraph'

/** `obj[key]` if it is the object's own: a channel named `constructor` must not find Object's. */
export const own = <T>(obj: Record<string, T> | undefined, key: string): T | undefined =>
  obj !== undefined && Object.hasOwn(obj, key) ? obj[key] : undefined

const isJson = (value: unknown): value is JsonValue => {
  try {
    assertJson(value)
    return true
  } catch {
    return false
  }
}

export const toBlob = async (serde: SerializerProtocol, value: unknown): Promise<Blob> => {
  // structuredClone drops `undefined` object members the way JSON does; the state map would too.
  if (isJson(value)) return { json: JSON.parse(JSON.stringify(value)) as JsonValue }
  const [type, bytes] = await serde.dumpsTyped(value)
  if (type === 'json') {
    try {
      const parsed: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
      if (isJson(parsed)) return { serde: type, json: parsed }
    } catch { /* not JSON text: stored as bytes */ }
  }
  return { serde: type, base64: toBase64(bytes) }
}

export const fromBlob = async (serde: SerializerProtocol, blob: Blob): Promise<unknown> => {
  if (!('serde' in blob)) return structuredClone(blob.json)
  if ('json' in blob) return serde.loadsTyped(blob.serde, JSON.stringify(blob.json))
  return serde.loadsTyped(blob.serde, fromBase64(blob.base64))
}

/** What the `values` view shows for a blob: the JSON itself when there is one. */
export const viewOf = (blob: Blob): unknown => ('json' in blob ? blob.json : blob)

export const parseThread = (workflowId: string, value: unknown): ThreadRecord | undefined => {
  if (value === undefined) return undefined
  const parsed = ThreadRecordSchema.safeParse(value)
  if (!parsed.success) throw new CorruptDataError(`${workflowId}/${STATE_KEY}`, `not a LangGraph thread record: ${parsed.error.issues[0]?.message ?? ''}`)
  return parsed.data
}
