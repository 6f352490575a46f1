/**
 * zod schemas (and their types) of every record that crosses a boundary: disk, wire, HTTP.
 * Written with `zod/mini` (functional checks instead of methods) because these schemas ship in
 * the browser SDK: mini tree-shakes to the few validators used, classic zod pulls in ~440 KB.
 * They are ordinary zod 4 schemas: `X.parse`/`X.safeParse` work, and classic zod composes
 * them (`z.object({ kind: z.optional(SnapshotKindSchema) })`, `zm.omit(ViolationRecordSchema, ...)`).
 */
import * as z from 'zod/mini'
import { WORKFLOW_ID_PATTERN } from './workflow-id.ts'

/** A workflow id (see workflow-id.ts); here, not there, so that checking ids needs no zod. */
export const WorkflowIdSchema = z.string().check(z.regex(WORKFLOW_ID_PATTERN))

export const JsonPatchOpSchema = z.object({
  op: z.enum(['add', 'remove', 'replace', 'move', 'copy', 'test']),
  path: z.string(),
  from: z.optional(z.string()),
  value: z.optional(z.unknown())
})
export type JsonPatchOp = z.infer<typeof JsonPatchOpSchema>

/** Optional tracing context attached to a change. */
export const ChangeMetaSchema = z.object({
  runId: z.optional(z.string().check(z.maxLength(200))),
  traceId: z.optional(z.string().check(z.maxLength(200))),
  toolCallId: z.optional(z.string().check(z.maxLength(200)))
})
export type ChangeMeta = z.infer<typeof ChangeMetaSchema>

/** One persisted change: the updates of one flush window. */
export const VersionRecordSchema = z.object({
  workflowId: z.string(),
  version: z.int().check(z.positive()),
  parentVersion: z.int().check(z.nonnegative()),
  /** base64 of Y.encodeSnapshot: state vector plus delete set after this version. */
  snapshot: z.string(),
  /** Agent id(s) of the connection(s) whose updates this version holds, comma separated. */
  author: z.string(),
  timestamp: z.int(),
  description: z.string(),
  meta: ChangeMetaSchema,
  /** SHA-256 (hex) of the canonical JSON (sorted keys) of the state after this version. */
  checksum: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
  /** RFC 6902 ops from the previous version's JSON to this one's. */
  changes: z.array(JsonPatchOpSchema),
  /** Changes to the agent runtime (lifecycle, session, tasks, events), paths prefixed by section. */
  runtimeChanges: z.optional(z.array(JsonPatchOpSchema))
})
export type VersionRecord = z.infer<typeof VersionRecordSchema>

export const SNAPSHOT_KINDS = ['routine', 'pre_operation', 'recovery', 'manual'] as const
export const SnapshotKindSchema = z.enum(SNAPSHOT_KINDS)
export type SnapshotKind = z.infer<typeof SnapshotKindSchema>

export const SnapshotRecordSchema = z.object({
  id: z.string(),
  workflowId: z.string(),
  name: z.string(),
  kind: SnapshotKindSchema,
  description: z.string(),
  version: z.int().check(z.nonnegative()),
  createdAt: z.int(),
  createdBy: z.string()
})
export type SnapshotRecord = z.infer<typeof SnapshotRecordSchema>

export const ConflictRecordSchema = z.object({
  id: z.int().check(z.positive()),
  workflowId: z.string(),
  /** JSON pointer of the map key written concurrently. */
  path: z.string(),
  /** Every concurrent write: who wrote what. */
  writes: z.array(z.object({ agent: z.string(), clientId: z.int(), value: z.unknown() })),
  /** Agent whose value the CRDT kept. */
  winner: z.string(),
  /** Version that persisted the later of the writes. */
  version: z.int().check(z.nonnegative()),
  detectedAt: z.int(),
  /** Set when a resolver overrode the winner with a new change. */
  resolution: z.optional(z.object({ value: z.unknown(), version: z.int().check(z.nonnegative()), by: z.string() }))
})
export type ConflictRecord = z.infer<typeof ConflictRecordSchema>

export const VIOLATION_KINDS = ['schema', 'paused', 'scope'] as const

/** A write the server did not accept as is: reverted (schema, scope) or only recorded (paused). */
export const ViolationRecordSchema = z.object({
  id: z.int().check(z.positive()),
  workflowId: z.string(),
  kind: z.enum(VIOLATION_KINDS),
  /** Agent id of the connection that wrote it. */
  agent: z.string(),
  /** JSON pointers the write touched (schema: where the issues are). */
  paths: z.array(z.string()),
  /** zod issues, for schema violations. */
  issues: z.optional(z.array(z.unknown())),
  /** Whether the server wrote a compensating change. */
  reverted: z.boolean(),
  version: z.int().check(z.nonnegative()),
  at: z.int()
})
export type ViolationRecord = z.infer<typeof ViolationRecordSchema>
