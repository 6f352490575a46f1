/**
 * zod schemas (and their types) of the agent runtime's records, as `src/model/runtime.ts` keeps
 * them in the workflow document (and re-exports them). zod/mini, and a module apart from the
 * runtime's logic, so that code which never validates these records bundles without zod:
 *
 *   import { TaskRecordSchema } from './runtime.ts'
 *   const task = TaskRecordSchema.parse(json)
 */
import * as z from 'zod/mini'

export const AGENT_STATUSES = ['idle', 'processing', 'resuming', 'error', 'archiving', 'notifying'] as const
export const AgentStatusSchema = z.enum(AGENT_STATUSES)
export type AgentStatus = z.infer<typeof AgentStatusSchema>

const Json = z.record(z.string(), z.unknown())

export const TransitionSchema = z.object({
  from: AgentStatusSchema,
  to: AgentStatusSchema,
  at: z.number(),
  metadata: z.optional(Json),
  reset: z.optional(z.boolean())
})

export const AgentRecordSchema = z.object({
  status: AgentStatusSchema,
  since: z.number(),
  metadata: Json,
  history: z.array(TransitionSchema),
  /** Set by the server when the agent stayed in `status` past its timeout. */
  timedOut: z.optional(z.object({ status: AgentStatusSchema, at: z.number() }))
})
export type AgentRecord = z.infer<typeof AgentRecordSchema>

export const SessionRecordSchema = z.object({
  paused: z.boolean(),
  reason: z.optional(z.string()),
  metadata: z.optional(Json),
  pausedAt: z.optional(z.number()),
  pausedBy: z.optional(z.string()),
  resumedAt: z.optional(z.number()),
  resumedBy: z.optional(z.string()),
  context: Json
})
export type SessionRecord = z.infer<typeof SessionRecordSchema>

export const TASK_KINDS = ['stack', 'queue'] as const
export const TaskKindSchema = z.enum(TASK_KINDS)
export type TaskKind = z.infer<typeof TaskKindSchema>
export const TaskStatusSchema = z.enum(['pending', 'claimed', 'done', 'failed'])

export const TaskRecordSchema = z.object({
  id: z.string(),
  kind: TaskKindSchema,
  /** Order key: LIFO claims take the highest, FIFO the lowest. */
  seq: z.number(),
  payload: z.unknown(),
  status: TaskStatusSchema,
  createdAt: z.number(),
  createdBy: z.string(),
  claimedBy: z.nullable(z.string()),
  claimedAt: z.nullable(z.number()),
  leaseMs: z.nullable(z.number()),
  /** Claims that ended in fail() or an expired lease. */
  attempts: z.int(),
  maxRetries: z.int(),
  result: z.optional(z.unknown()),
  error: z.optional(z.string())
})
export type TaskRecord = z.infer<typeof TaskRecordSchema>

export const RuntimeEventSchema = z.object({
  type: z.enum(['timeout', 'lease-expired']),
  at: z.number(),
  agentId: z.string(),
  status: z.optional(AgentStatusSchema),
  since: z.optional(z.number()),
  taskId: z.optional(z.string())
})
export type RuntimeEvent = z.infer<typeof RuntimeEventSchema>
