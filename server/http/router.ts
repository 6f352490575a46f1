/**
 * What the HTTP handlers share: the request record and context, the error type and status
 * table, body and argument parsing, replies and authored server-side writes. The handlers are
 * rows of the route table (server/http/routes.ts, where every route is listed).
 *
 *   export const getHead: Handler = async r => ({ version: await headOf(r) })
 */
import type http from 'node:http'
import { z } from 'zod'
import { AccordError, type AccordErrorCode } from '../../src/model/errors.ts'
import type { JsonObject } from '../../src/model/json.ts'
import { readState } from '../../src/model/json-yjs.ts'
import { PausedError, isPaused, readRuntime } from '../../src/model/runtime.ts'
import { ChangeMetaSchema } from '../../src/model/schema.ts'
import { assertWorkflowId } from '../../src/model/workflow-id.ts'
import type { Authenticate, Principal } from './auth.ts'
import { intArg } from './args.ts'
import type { McpEndpoint } from './mcp-endpoint.ts'
import type { ChangeFeed } from '../sync/feed.ts'
import type { ListWatch } from '../sync/list-watch.ts'
import * as history from '../history/history.ts'
import type { Logger } from '../ops/log.ts'
import type { Metrics } from '../ops/metrics.ts'
import type { Described } from '../sync/contracts.ts'
import type { Workflow } from '../sync/workflow.ts'
import type { ZodType } from 'zod'

export const STATUS: Partial<Record<AccordErrorCode | 'INTERNAL', number>> = {
  INVALID_JSON: 400,
  INVALID_PATCH: 400,
  SCHEMA_VIOLATION: 400,
  INVALID_WORKFLOW_ID: 400,
  INVALID_REQUEST: 400,
  INVALID_MESSAGE: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  INVALID_TRANSITION: 409,
  NOT_TASK_OWNER: 409,
  PAUSED: 409,
  PRECONDITION_FAILED: 412,
  MESSAGE_TOO_LARGE: 413,
  QUOTA_EXCEEDED: 413,
  LIMIT_EXCEEDED: 429,
  CORRUPT_DATA: 500,
  NOT_SUPPORTED: 501,
  INTERNAL: 500,
  STORAGE_FAILURE: 503,
  WORKFLOW_UNAVAILABLE: 503,
  TIMEOUT: 504
}

/** What GET /readyz reports besides `ready`. */
export interface Readiness {
  /** The server's lifecycle state: ready only while `listening`. */
  state: string
  /** Workflows refused because their stored data is damaged (they do not make the server unready). */
  corruptWorkflows: Array<{ workflowId: string, error: string, at: number }>
  /** Cluster mode: this server's id on the bus. */
  serverId?: string
}

/** Everything a route handler may reach: one per running server (server.ts builds it in start()). */
export interface HttpContext extends history.HistoryContext {
  feed: ChangeFeed
  log: Logger
  maxBodySize: number
  /** The caller: from its token when auth is on, else anyone (named by `claimed`). */
  authenticate: Authenticate
  schemaFor: (workflowId: string) => ZodType | undefined
  /** Runs `fn` with the workflow loaded; releases it after. */
  withWorkflow: <T>(id: string, fn: (wf: Workflow) => Promise<T>) => Promise<T>
  /** SSE keep-alive comment interval. */
  keepAliveMs: number
  /** Open SSE responses, ended on close. */
  streams: Set<http.ServerResponse>
  metrics: Metrics
  readiness: () => Readiness
  /** The list feed of every workflow's versions (GET /v1/watch/workflows). */
  watch: ListWatch
  /** The inspector's build directory, or null when it is turned off (then there are no /ui routes). */
  uiDir: string | null
  /** The MCP endpoint, or null without the `mcp` option (then there is no /mcp route). */
  mcp: McpEndpoint | null
}

/** A request to a public route: no principal, the handler authenticates itself if it needs to. */
export interface PublicRequest {
  req: http.IncomingMessage
  res: http.ServerResponse
  url: URL
  params: Record<string, string>
  ctx: HttpContext
}

export interface Request extends PublicRequest {
  principal: Principal
}

/**
 * A handler's result is sent as JSON with `res.statusCode` (200 unless the handler set it);
 * `undefined` answers 204 (or the status it set) unless the handler has answered itself;
 * RESPONDED leaves the response alone (a handler that owns it, like MCP's transport).
 */
export type Handler = (r: Request) => Promise<unknown>
export type PublicHandler = (r: PublicRequest) => Promise<unknown>
export const RESPONDED: unique symbol = Symbol('responded')

export class HttpError extends AccordError {}

export const precondition = (message: string): HttpError => new HttpError('PRECONDITION_FAILED', message)

/** decodeURIComponent with a malformed escape (`%ZZ`, a cut UTF-8 sequence) as a 400, not a 500. */
export const decode = (text: string, what: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new HttpError('INVALID_REQUEST', `malformed percent-encoding in ${what}`)
  }
}

export const readBody = async (r: Request): Promise<unknown> => {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of r.req) {
    size += (chunk as Buffer).length
    if (size > r.ctx.maxBodySize) throw new HttpError('MESSAGE_TOO_LARGE', `body larger than ${r.ctx.maxBodySize} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError('INVALID_JSON', 'the request body is not valid JSON')
  }
}

export const parse = <T>(schema: ZodType<T>, value: unknown): T => {
  const result = schema.safeParse(value)
  if (!result.success) throw new HttpError('INVALID_REQUEST', 'invalid request body or query', { issues: result.error.issues })
  return result.data
}

export const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  if (res.headersSent) return
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

export const sendError = (res: http.ServerResponse, err: unknown, log?: Logger): void => {
  const e = err as { code?: string, message?: string, details?: unknown }
  const code = typeof e.code === 'string' && e.code in STATUS ? e.code : 'INTERNAL'
  const status = STATUS[code as AccordErrorCode] ?? 500
  if (status >= 500) log?.error('request failed', { code, error: e.message })
  send(res, status, { error: { code, message: status === 500 && code === 'INTERNAL' ? 'internal error' : e.message, details: e.details ?? null } })
}

export const etag = (version: number): string => `"${version}"`

/** What a request's write is recorded as: its X-Accord-Description (or `fallback`) and tracing headers. */
export const described = (r: Request, fallback: string): Described => {
  const meta = ChangeMetaSchema.safeParse({
    runId: r.req.headers['x-accord-run-id'],
    traceId: r.req.headers['x-accord-trace-id'],
    toolCallId: r.req.headers['x-accord-tool-call-id']
  })
  const header = r.req.headers['x-accord-description']
  const description = typeof header === 'string' ? decode(header, 'X-Accord-Description').slice(0, 2000) : fallback
  return { description, meta: meta.success ? meta.data : undefined }
}

/** A server-side write: refused while paused, then flushed so the reply names a durable version. */
export const write = async (wf: Workflow, r: Request, fallback: string, fn: () => void): Promise<number> => {
  if (isPaused(wf.doc)) throw new PausedError(wf.id, readRuntime(wf.doc).session.reason)
  wf.transact(fn, { agentId: r.principal.agentId }, described(r, fallback))
  await wf.whenFlushed(Number.POSITIVE_INFINITY)
  return wf.head
}

export const id = (r: Request): string => assertWorkflowId(r.params.id as string)

/** An optional integer query parameter, checked by intArg. */
export const queryInt = (r: Request, name: string, min: number, max: number, maxName?: string): number | undefined => {
  const raw = r.url.searchParams.get(name)
  return raw === null ? undefined : intArg(`?${name}`, raw, min, max, maxName)
}

/** The newest durable version of the workflow (flushed first when it is loaded). */
export const headOf = async (r: Request): Promise<number> => {
  const wid = id(r)
  const meta = await history.requireMeta(r.ctx, wid)
  const wf = r.ctx.registry.get(wid)
  if (wf === undefined) return meta.head
  await wf.whenFlushed()
  return wf.head
}

/** A version argument: 0 up to the head. */
export const versionArg = async (r: Request, name: string, value: unknown): Promise<number> => intArg(name, value, 0, await headOf(r), 'the head version')

/** Body `version` fields: any JSON value here, so a wrong one gets the same 400 as a query parameter. */
export const OptionalVersion = z.unknown().optional()

export const stateOf = async (r: Request): Promise<{ version: number, state: JsonObject }> => {
  const wid = id(r)
  await history.requireMeta(r.ctx, wid)
  return r.ctx.withWorkflow(wid, async wf => {
    await wf.whenFlushed()
    return { version: wf.head, state: readState(wf.doc) }
  })
}
