/**
 * The Accord tools of the MCP server. Names and inputs are part of the public contract (issue 18):
 * list_workflows, read_state, apply_patch, history, diff, create_task, claim_task, complete_task,
 * fail_task. Each answers with structured JSON; a refused call is a tool error (`isError`) whose
 * structured content is `{ error: { code, message, details } }` with the Accord error code.
 *
 *   registerTools(mcpServer, { api, handles })
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { AccordError, InvalidPatchError } from '../model/errors.ts'
import { assertJson, type JsonValue } from '../model/json.ts'
import { JsonPatchOpSchema, type VersionRecord } from '../model/schema.ts'
import { TaskKindSchema } from '../model/runtime.ts'
import { assertWorkflowId } from '../model/workflow-id.ts'
import type { PatchOperation } from '../model/patch.ts'
import type { HttpApi } from './http-api.ts'
import type { Handles } from './handles.ts'
import { valueAt } from './pointer.ts'

export interface ToolContext {
  api: HttpApi
  handles: Handles
}

/** A refused call as a tool error the model can read and branch on; never a protocol error. */
export const toolError = (err: unknown): CallToolResult => {
  const e = err instanceof AccordError ? err : null
  const code = e?.code ?? 'INTERNAL'
  const message = err instanceof Error ? err.message : String(err)
  return {
    isError: true,
    content: [{ type: 'text', text: `${code}: ${message}` }],
    structuredContent: { error: { code, message, details: e?.details ?? null } }
  }
}

const ok = (result: Record<string, unknown>): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(result) }],
  structuredContent: result
})

const safely = <A>(fn: (args: A) => Promise<Record<string, unknown>>) => async (args: A): Promise<CallToolResult> => {
  try {
    return ok(await fn(args))
  } catch (err) {
    return toolError(err)
  }
}

/** The history entries without the binary snapshot and checksum (of no use to a model). */
const summary = ({ snapshot: _s, checksum: _c, ...rest }: VersionRecord): Omit<VersionRecord, 'snapshot' | 'checksum'> => rest

const workflowId = z.string().describe('Workflow id, e.g. release-42')
const version = z.number().int().nonnegative()

export const registerTools = (server: McpServer, ctx: ToolContext): void => {
  const { api, handles } = ctx

  server.registerTool('list_workflows', {
    title: 'List workflows',
    description: 'The workflows this agent may read, with their current version.',
    annotations: { readOnlyHint: true }
  }, safely(async () => ({ workflows: await api.list() })))

  server.registerTool('read_state', {
    title: 'Read workflow state',
    description: 'The JSON state of a workflow, now or at an earlier version, whole or at a JSON pointer path.',
    inputSchema: { workflowId, path: z.string().optional().describe('JSON pointer, e.g. /tasks/0 (default: the whole state)'), version: version.optional().describe('An earlier version (default: the current one)') },
    annotations: { readOnlyHint: true }
  }, safely(async args => {
    const reply = await api.read(assertWorkflowId(args.workflowId), args.version)
    if (args.path === undefined || args.path === '') return { workflowId: reply.workflowId, version: reply.version, state: reply.state }
    return { workflowId: reply.workflowId, version: reply.version, path: args.path, value: valueAt(reply.state, args.path) }
  }))

  server.registerTool('apply_patch', {
    title: 'Apply a JSON patch',
    description: 'Applies RFC 6902 operations to the workflow state as one new version authored by this agent. With ifVersion it applies only if the current version is still that one. A failing test op refuses the whole patch.',
    inputSchema: {
      workflowId,
      ops: z.array(z.any()).describe('RFC 6902 operations, e.g. [{"op":"replace","path":"/status","value":"done"}]'),
      ifVersion: version.optional().describe('Apply only if the workflow is still at this version'),
      description: z.string().max(2000).optional().describe('Why: recorded with the version')
    },
    annotations: { destructiveHint: true }
  }, safely(async args => {
    const ops = z.array(JsonPatchOpSchema).safeParse(args.ops)
    if (!ops.success) throw new InvalidPatchError('ops must be RFC 6902 operations ({ op, path, value?, from? })', { issues: ops.error.issues })
    const reply = await api.patch(assertWorkflowId(args.workflowId), ops.data as PatchOperation[], { ifVersion: args.ifVersion, description: args.description })
    return { workflowId: reply.workflowId, version: reply.version, state: reply.state }
  }))

  server.registerTool('history', {
    title: 'Workflow history',
    description: 'Versions newest first: who changed what (RFC 6902 ops), when and why.',
    inputSchema: { workflowId, limit: z.number().int().positive().max(1000).optional().describe('How many (default 50)'), before: version.optional().describe('Only versions before this one') },
    annotations: { readOnlyHint: true }
  }, safely(async args => {
    const handle = await handles.get(args.workflowId)
    const versions = await handle.history({ limit: args.limit, before: args.before })
    return { workflowId: args.workflowId, versions: versions.map(summary) }
  }))

  server.registerTool('diff', {
    title: 'Diff two versions',
    description: 'RFC 6902 operations turning the state at version `from` into the state at version `to`.',
    inputSchema: { workflowId, from: version, to: version },
    annotations: { readOnlyHint: true }
  }, safely(async args => {
    const handle = await handles.get(args.workflowId)
    return { workflowId: args.workflowId, from: args.from, to: args.to, ops: await handle.diff(args.from, args.to) }
  }))

  server.registerTool('create_task', {
    title: 'Create a task',
    description: 'Adds a pending task to the workflow (stack: claimed newest first; queue: oldest first).',
    inputSchema: { workflowId, payload: z.any().describe('Any JSON value describing the work'), kind: z.optional(TaskKindSchema).describe('stack (default) or queue') }
  }, safely(async args => {
    const id = assertWorkflowId(args.workflowId)
    const payload = (args.payload ?? null) as JsonValue
    assertJson(payload)
    // The task endpoint would create a missing workflow: check first.
    await api.requireWorkflow(id)
    return { task: await api.pushTask(id, payload, args.kind) }
  }))

  server.registerTool('claim_task', {
    title: 'Claim a task',
    description: 'Claims the next pending task for this agent (null when there is none); the lease ends it after leaseMs.',
    inputSchema: { workflowId, kind: z.optional(TaskKindSchema), leaseMs: z.number().int().positive().optional() }
  }, safely(async args => {
    const handle = await handles.get(args.workflowId)
    return { task: await handle.tasks.claim({ kind: args.kind, leaseMs: args.leaseMs }) }
  }))

  server.registerTool('complete_task', {
    title: 'Complete a task',
    description: 'Marks a task this agent claimed as done, with an optional JSON result.',
    inputSchema: { workflowId, taskId: z.string().min(1), result: z.any().optional() }
  }, safely(async args => {
    if (args.result !== undefined) assertJson(args.result)
    const handle = await handles.get(args.workflowId)
    return { task: await handle.tasks.complete(args.taskId, args.result as JsonValue | undefined) }
  }))

  server.registerTool('fail_task', {
    title: 'Fail a task',
    description: 'Ends this agent\'s claim on a task: pending again while retries remain, else failed.',
    inputSchema: { workflowId, taskId: z.string().min(1), error: z.string().max(2000) }
  }, safely(async args => {
    const handle = await handles.get(args.workflowId)
    return { task: await handle.tasks.fail(args.taskId, args.error) }
  }))
}
