/**
 * The few calls of Accord's HTTP API (`/v1`, served on the same port as the WebSocket) that the
 * SDK has no equivalent for: listing workflows, reading the state with the version it belongs to,
 * and server-side writes that are conditional (If-Match), report their durable version and are
 * refused cleanly (FORBIDDEN) for read-only tokens.
 *
 *   const api = createHttpApi({ url: 'ws://127.0.0.1:1234', token, agentId: 'mcp' })
 *   const { version, state } = await api.read('release-42')
 */
import { z } from 'zod'
import { AccordError, type AccordErrorCode } from '../model/errors.ts'
import type { JsonObject, JsonValue } from '../model/json.ts'
import type { PatchOperation } from '../model/patch.ts'
import { TaskRecordSchema, type TaskKind, type TaskRecord } from '../model/runtime.ts'

export interface HttpApiOptions {
  /** The server's WebSocket address (ws:// or wss://); the API lives on the same host and port. */
  url: string
  /** Sent as a Bearer token (servers with auth). */
  token?: string
  /** Named as the author on servers without auth. */
  agentId: string
  fetch?: typeof globalThis.fetch
}

export const WorkflowSummarySchema = z.object({
  workflowId: z.string(),
  version: z.number().int().nonnegative(),
  createdAt: z.number(),
  updatedAt: z.number(),
  forkOf: z.string().nullable()
})
export type WorkflowSummary = z.infer<typeof WorkflowSummarySchema>

const StateReplySchema = z.object({
  workflowId: z.string(),
  version: z.number().int().nonnegative(),
  state: z.record(z.string(), z.unknown())
})
export interface StateReply { workflowId: string, version: number, state: JsonObject }

const ErrorReplySchema = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) })

export interface HttpApi {
  list: () => Promise<WorkflowSummary[]>
  /** Resolves when the workflow exists; NOT_FOUND otherwise (a cheap read that creates nothing). */
  requireWorkflow: (workflowId: string) => Promise<void>
  /** NOT_FOUND for a workflow that does not exist (nothing is created). */
  read: (workflowId: string, version?: number) => Promise<StateReply>
  /** RFC 6902 ops applied by the server; `ifVersion` refuses with PRECONDITION_FAILED when the head moved. */
  patch: (workflowId: string, ops: PatchOperation[], options?: { ifVersion?: number, description?: string }) => Promise<StateReply>
  pushTask: (workflowId: string, payload: JsonValue, kind?: TaskKind) => Promise<TaskRecord>
}

/** ws://host:port/path -> http://host:port (wss -> https). */
export const httpBase = (url: string): string => {
  const parsed = new URL(url)
  if (parsed.protocol === 'ws:') parsed.protocol = 'http:'
  else if (parsed.protocol === 'wss:') parsed.protocol = 'https:'
  else if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new AccordError('INVALID_REQUEST', `not a ws:// or http:// server address: ${url}`)
  return parsed.origin
}

export const createHttpApi = (options: HttpApiOptions): HttpApi => {
  const base = httpBase(options.url)
  const doFetch = options.fetch ?? globalThis.fetch

  const call = async <T>(schema: z.core.$ZodType<T>, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> => {
    let res: Response
    try {
      res = await doFetch(base + path, {
        method,
        headers: {
          ...(options.token === undefined ? { 'x-accord-agent': options.agentId } : { authorization: `Bearer ${options.token}` }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers
        },
        body: body === undefined ? undefined : JSON.stringify(body)
      })
    } catch (err) {
      throw new AccordError('WORKFLOW_UNAVAILABLE', `cannot reach the Accord server at ${base}: ${(err as Error).message}`, undefined, { cause: err })
    }
    const text = await res.text()
    let json: unknown = null
    try {
      json = text === '' ? null : JSON.parse(text)
    } catch {}
    if (!res.ok) {
      const e = ErrorReplySchema.safeParse(json)
      if (e.success) throw new AccordError(e.data.error.code as AccordErrorCode, e.data.error.message, e.data.error.details ?? undefined)
      throw new AccordError('WORKFLOW_UNAVAILABLE', `${method} ${path} answered ${res.status}`)
    }
    const parsed = z.safeParse(schema, json)
    if (!parsed.success) throw new AccordError('INVALID_MESSAGE', `unexpected reply to ${method} ${path}`, { issues: parsed.error.issues })
    return parsed.data
  }

  const at = (id: string): string => `/v1/workflows/${encodeURIComponent(id)}`

  return {
    list: () => call(z.array(WorkflowSummarySchema), 'GET', '/v1/workflows'),
    requireWorkflow: async id => { await call(z.array(z.unknown()), 'GET', `${at(id)}/history?limit=1`) },
    read: async (id, version) => await call(StateReplySchema, 'GET', at(id) + (version === undefined ? '' : `?version=${version}`)) as StateReply,
    patch: async (id, ops, o = {}) => await call(StateReplySchema, 'PATCH', at(id), ops, {
      'content-type': 'application/json-patch+json',
      ...(o.ifVersion === undefined ? {} : { 'if-match': `"${o.ifVersion}"` }),
      // A header: encoded so any description survives.
      ...(o.description === undefined ? {} : { 'x-accord-description': encodeURIComponent(o.description) })
    }) as StateReply,
    pushTask: (id, payload, kind) => call(TaskRecordSchema, 'POST', `${at(id)}/tasks`, { payload, ...(kind === undefined ? {} : { kind }) })
  }
}
