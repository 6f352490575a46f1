/**
 * The HTTP JSON API under /v1 (for agents that do not speak Yjs) and the live change stream
 * (Server-Sent Events). Every error is `{ error: { code, message, details } }` with the status
 * of its code (STATUS below). Writes are CRDT changes authored by the caller and merge with
 * concurrent Yjs edits.
 */
import type http from 'node:http'
import { z } from 'zod'
import { AccordError, InvalidPatchError, SchemaViolationError, type AccordErrorCode } from '../../src/model/errors.ts'
import { assertJson, type JsonObject, type JsonValue } from '../../src/model/json.ts'
import { readState, setAt, setMapContents, stateRoot } from '../../src/model/json-yjs.ts'
import { applyPatchToJson, applyPatchToYjs } from '../../src/model/patch.ts'
import {
  DEFAULT_TRANSITIONS, PausedError, AgentStatusSchema, TaskKindSchema, isPaused, newTaskRecord, readAgent, readRuntime,
  runtimeMap, softResetRecord, transitionRecord, writePause, writeResume
} from '../../src/model/runtime.ts'
import { ChangeMetaSchema, JsonPatchOpSchema, SnapshotKindSchema } from '../../src/model/schema.ts'
import { assertWorkflowId } from '../../src/model/workflow-id.ts'
import { ForbiddenError, pathMatches, type Principal, type Right } from './auth.ts'
import type { ChangeFeed } from '../sync/feed.ts'
import * as history from '../history/history.ts'
import type { Logger } from '../ops/log.ts'
import { claimTask, completeTask, failTask } from '../runtime/runtime.ts'
import type { ChangeOrigin, Workflow } from '../sync/workflow.ts'
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

export interface HttpContext extends history.HistoryContext {
  feed: ChangeFeed
  log: Logger
  maxBodySize: number
  /** The caller: from its token when auth is on, else anyone (named by `claimed`). */
  authenticate: (token: string | undefined, claimed: string | null) => Promise<Principal>
  schemaFor: (workflowId: string) => ZodType | undefined
  /** Runs `fn` with the workflow loaded; releases it after. */
  withWorkflow: <T>(id: string, fn: (wf: Workflow) => Promise<T>) => Promise<T>
  /** SSE keep-alive comment interval. */
  keepAliveMs: number
  /** Open SSE responses, ended on close. */
  streams: Set<http.ServerResponse>
}

interface Request {
  req: http.IncomingMessage
  res: http.ServerResponse
  url: URL
  params: Record<string, string>
  principal: Principal
  ctx: HttpContext
}

type Handler = (r: Request) => Promise<unknown>

class HttpError extends AccordError {}

const precondition = (message: string): HttpError => new HttpError('PRECONDITION_FAILED', message)

/** decodeURIComponent with a malformed escape (`%ZZ`, a cut UTF-8 sequence) as a 400, not a 500. */
const decode = (text: string, what: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new HttpError('INVALID_REQUEST', `malformed percent-encoding in ${what}`)
  }
}

const readBody = async (r: Request): Promise<unknown> => {
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

const parse = <T>(schema: ZodType<T>, value: unknown): T => {
  const result = schema.safeParse(value)
  if (!result.success) throw new HttpError('INVALID_REQUEST', 'invalid request body or query', { issues: result.error.issues })
  return result.data
}

const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
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

const etag = (version: number): string => `"${version}"`

const origin = (r: Request, fallback: string): ChangeOrigin => {
  const meta = ChangeMetaSchema.safeParse({
    runId: r.req.headers['x-accord-run-id'],
    traceId: r.req.headers['x-accord-trace-id'],
    toolCallId: r.req.headers['x-accord-tool-call-id']
  })
  const header = r.req.headers['x-accord-description']
  const description = typeof header === 'string' ? decode(header, 'X-Accord-Description').slice(0, 2000) : fallback
  return { agentId: r.principal.agentId, takeDescription: () => ({ description, meta: meta.success ? meta.data : undefined }) }
}

/** A server-side write: refused while paused, then flushed so the reply names a durable version. */
const write = async (wf: Workflow, r: Request, fallback: string, fn: () => void): Promise<number> => {
  if (isPaused(wf.doc)) throw new PausedError(wf.id, readRuntime(wf.doc).session.reason)
  wf.transact(fn, origin(r, fallback))
  await wf.whenFlushed(Number.POSITIVE_INFINITY)
  return wf.head
}

const id = (r: Request): string => assertWorkflowId(r.params.id as string)

const Version = z.coerce.number().int().nonnegative()

const stateOf = async (r: Request): Promise<{ version: number, state: JsonObject }> => {
  const wid = id(r)
  await history.requireMeta(r.ctx, wid)
  return r.ctx.withWorkflow(wid, async wf => {
    await wf.whenFlushed()
    return { version: wf.head, state: readState(wf.doc) }
  })
}

const routes: Array<{ method: string, pattern: RegExp, right: Right | null, handler: Handler }> = []
const route = (method: string, path: string, right: Right | null, handler: Handler): void => {
  const pattern = new RegExp('^' + path.replace(/:(\w+)/g, '(?<$1>[^/]+)') + '$')
  routes.push({ method, pattern, right, handler })
}

route('GET', '/v1/workflows', null, async r => {
  const metas = await r.ctx.store.listWorkflows()
  return metas.filter(m => r.principal.can(m.id, 'read')).map(m => ({ workflowId: m.id, version: m.head, createdAt: m.createdAt, updatedAt: m.updatedAt, forkOf: m.forkOf ?? null }))
})

route('POST', '/v1/workflows', 'write', async r => {
  const body = parse(z.object({ workflowId: z.string(), state: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  const wid = assertWorkflowId(body.workflowId)
  if (!r.principal.can(wid, 'write')) throw new ForbiddenError(`no write access to ${wid}`)
  if (await r.ctx.store.getMeta(wid) !== null || r.ctx.registry.get(wid) !== undefined) throw new HttpError('CONFLICT', `workflow ${wid} exists`)
  const state = (body.state ?? {}) as JsonObject
  assertJson(state)
  checkSchema(r.ctx, wid, state)
  const version = await r.ctx.withWorkflow(wid, wf => write(wf, r, 'created over HTTP', () => { setMapContents(stateRoot(wf.doc), state) }))
  r.res.statusCode = 201
  return { workflowId: wid, version, state }
})

const checkSchema = (ctx: HttpContext, wid: string, state: JsonObject): void => {
  const schema = ctx.schemaFor(wid)
  if (schema === undefined) return
  const result = schema.safeParse(state)
  if (!result.success) {
    throw new SchemaViolationError(result.error.issues.map(i => ({ path: i.path.map(p => typeof p === 'symbol' ? String(p) : p), message: i.message, code: i.code })))
  }
}

route('GET', '/v1/workflows/:id', 'read', async r => {
  const versionParam = r.url.searchParams.get('version')
  if (versionParam !== null) {
    const version = parse(Version, versionParam)
    const state = await history.stateAt(r.ctx, id(r), version)
    r.res.setHeader('etag', etag(version))
    return { workflowId: id(r), version, state }
  }
  const { version, state } = await stateOf(r)
  if (r.req.headers['if-none-match'] === etag(version)) {
    r.res.writeHead(304, { etag: etag(version) }).end()
    return undefined
  }
  r.res.setHeader('etag', etag(version))
  return { workflowId: id(r), version, state }
})

route('PATCH', '/v1/workflows/:id', 'write', async r => {
  const type = (r.req.headers['content-type'] ?? '').split(';')[0]?.trim()
  if (type !== 'application/json-patch+json' && type !== 'application/json') {
    throw new HttpError('INVALID_REQUEST', 'PATCH needs Content-Type: application/json-patch+json')
  }
  const body = await readBody(r)
  const ops = z.array(JsonPatchOpSchema).safeParse(body)
  if (!ops.success) throw new InvalidPatchError('a JSON patch must be an array of RFC 6902 operations', { issues: ops.error.issues })
  const wid = id(r)
  await history.requireMeta(r.ctx, wid)
  const allowed = r.principal.writePaths(wid)
  if (allowed !== null) {
    const outside = ops.data.flatMap(op => [op.path, ...(op.from === undefined ? [] : [op.from])]).filter(p => !allowed.some(a => pathMatches(a, p)))
    if (outside.length > 0) throw new ForbiddenError(`${r.principal.agentId} may not write ${outside.join(', ')}`, { paths: outside })
  }
  return r.ctx.withWorkflow(wid, async wf => {
    await wf.whenFlushed()
    const match = r.req.headers['if-match']
    if (match !== undefined && match !== '*' && match !== etag(wf.head)) {
      throw precondition(`version moved: If-Match ${match}, current ${etag(wf.head)}`)
    }
    const next = applyPatchToJson(readState(wf.doc), ops.data)
    assertJson(next)
    checkSchema(r.ctx, wid, next)
    const version = await write(wf, r, `patch by ${r.principal.agentId}`, () => { applyPatchToYjs(stateRoot(wf.doc), ops.data as never) })
    r.res.setHeader('etag', etag(version))
    return { workflowId: wid, version, state: readState(wf.doc) }
  })
})

route('DELETE', '/v1/workflows/:id', 'admin', async r => {
  await history.deleteWorkflow(r.ctx, id(r))
  r.res.statusCode = 204
  return undefined
})

route('GET', '/v1/workflows/:id/history', 'read', async r => {
  const q = parse(z.object({ limit: Version.optional(), before: Version.optional() }), Object.fromEntries(r.url.searchParams))
  return history.history(r.ctx, id(r), q)
})

route('GET', '/v1/workflows/:id/diff', 'read', async r => {
  const q = parse(z.object({ from: Version, to: Version }), Object.fromEntries(r.url.searchParams))
  return history.diff(r.ctx, id(r), q.from, q.to)
})

route('GET', '/v1/workflows/:id/snapshots', 'read', async r => history.listSnapshots(r.ctx, id(r)))

route('POST', '/v1/workflows/:id/snapshots', 'write', async r => {
  const body = parse(z.object({ name: z.string().min(1).max(200), kind: z.optional(SnapshotKindSchema), description: z.string().max(2000).optional(), version: z.number().int().nonnegative().optional() }), await readBody(r))
  r.res.statusCode = 201
  return history.createSnapshot(r.ctx, id(r), { ...body, by: r.principal.agentId })
})

route('DELETE', '/v1/workflows/:id/snapshots/:snapshotId', 'admin', async r => {
  await history.deleteSnapshot(r.ctx, id(r), r.params.snapshotId as string)
  r.res.statusCode = 204
  return undefined
})

route('POST', '/v1/workflows/:id/restore', 'write', async r => {
  const body = parse(z.object({ version: z.number().int().nonnegative().optional(), snapshotId: z.string().optional() }), await readBody(r))
  return history.restore(r.ctx, id(r), { ...body, by: r.principal.agentId })
})

route('POST', '/v1/workflows/:id/fork', 'admin', async r => {
  const body = parse(z.object({ version: z.number().int().nonnegative().optional() }), await readBody(r))
  r.res.statusCode = 201
  return history.fork(r.ctx, id(r), { ...body, by: r.principal.agentId })
})

route('POST', '/v1/workflows/:id/promote', 'admin', async r => history.promote(r.ctx, id(r), { by: r.principal.agentId }))

route('POST', '/v1/workflows/:id/discard', 'admin', async r => {
  await history.discard(r.ctx, id(r))
  r.res.statusCode = 204
  return undefined
})

route('GET', '/v1/workflows/:id/conflicts', 'read', async r => history.conflicts(r.ctx, id(r)))
route('GET', '/v1/workflows/:id/violations', 'read', async r => history.violations(r.ctx, id(r)))

const runtimeOf = async (r: Request): Promise<ReturnType<typeof readRuntime>> => {
  const wid = id(r)
  await history.requireMeta(r.ctx, wid)
  return r.ctx.withWorkflow(wid, async wf => readRuntime(wf.doc))
}

route('GET', '/v1/workflows/:id/runtime', 'read', runtimeOf)

route('POST', '/v1/workflows/:id/agents/:agentId/transition', 'write', async r => {
  const body = parse(z.object({ to: AgentStatusSchema, metadata: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  const agentId = r.params.agentId as string
  if (body.metadata !== undefined) assertJson(body.metadata)
  return r.ctx.withWorkflow(id(r), async wf => {
    const current = readAgent(wf.doc, agentId)
    const next = transitionRecord(agentId, current, body.to, body.metadata, DEFAULT_TRANSITIONS)
    await write(wf, r, `${agentId}: ${current?.status ?? 'idle'} -> ${body.to}`, () => { setAt(runtimeMap(wf.doc, 'agents'), agentId, next as unknown as JsonValue) })
    return next
  })
})

route('POST', '/v1/workflows/:id/agents/:agentId/soft-reset', 'write', async r => {
  const agentId = r.params.agentId as string
  return r.ctx.withWorkflow(id(r), async wf => {
    const next = softResetRecord(readAgent(wf.doc, agentId))
    await write(wf, r, `${agentId}: soft reset to idle`, () => { setAt(runtimeMap(wf.doc, 'agents'), agentId, next as unknown as JsonValue) })
    return next
  })
})

route('POST', '/v1/workflows/:id/pause', 'write', async r => {
  const body = parse(z.object({ reason: z.string().max(2000), metadata: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  if (body.metadata !== undefined) assertJson(body.metadata)
  return r.ctx.withWorkflow(id(r), async wf => {
    await write(wf, r, `${r.principal.agentId} paused: ${body.reason}`, () => { writePause(wf.doc, r.principal.agentId, body.reason, body.metadata) })
    return readRuntime(wf.doc).session
  })
})

route('POST', '/v1/workflows/:id/resume', 'write', async r => {
  const body = parse(z.object({ context: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  if (body.context !== undefined) assertJson(body.context)
  return r.ctx.withWorkflow(id(r), async wf => {
    if (!isPaused(wf.doc)) throw new HttpError('INVALID_REQUEST', 'the workflow is not paused')
    wf.transact(() => { writeResume(wf.doc, r.principal.agentId, body.context) }, origin(r, `${r.principal.agentId} resumed`))
    await wf.whenFlushed(Number.POSITIVE_INFINITY)
    return readRuntime(wf.doc).session
  })
})

route('GET', '/v1/workflows/:id/tasks', 'read', async r => Object.values((await runtimeOf(r)).tasks).sort((a, b) => a.seq - b.seq))

route('POST', '/v1/workflows/:id/tasks', 'write', async r => {
  const body = parse(z.object({ payload: z.unknown(), kind: z.optional(TaskKindSchema), maxRetries: z.number().int().nonnegative().optional(), id: z.string().min(1).max(200).optional() }), await readBody(r))
  assertJson(body.payload ?? null)
  return r.ctx.withWorkflow(id(r), async wf => {
    const task = newTaskRecord(r.principal.agentId, body.payload ?? null, body)
    await write(wf, r, `${r.principal.agentId} pushed task ${task.id}`, () => { setAt(runtimeMap(wf.doc, 'tasks'), task.id, task as unknown as JsonValue) })
    r.res.statusCode = 201
    return task
  })
})

route('POST', '/v1/workflows/:id/tasks/claim', 'write', async r => {
  const body = parse(z.object({ kind: z.optional(TaskKindSchema), leaseMs: z.number().int().positive().optional() }), await readBody(r))
  const task = await r.ctx.withWorkflow(id(r), wf => claimTask(wf, r.principal.agentId, body))
  if (task === null) {
    r.res.statusCode = 204
    return undefined
  }
  return task
})

route('POST', '/v1/workflows/:id/tasks/:taskId/complete', 'write', async r => {
  const body = parse(z.object({ result: z.unknown().optional() }), await readBody(r))
  return r.ctx.withWorkflow(id(r), wf => completeTask(wf, r.principal.agentId, r.params.taskId as string, body.result))
})

route('POST', '/v1/workflows/:id/tasks/:taskId/fail', 'write', async r => {
  const body = parse(z.object({ error: z.string().max(2000) }), await readBody(r))
  return r.ctx.withWorkflow(id(r), wf => failTask(wf, r.principal.agentId, r.params.taskId as string, body.error))
})

/**
 * Server-Sent Events of change records. `Last-Event-ID` (or ?after=N) resumes after that version:
 * every missed record once, in order, then live ones; without it the stream starts now.
 */
const events = async (r: Request): Promise<void> => {
  const wid = id(r)
  const meta = await history.requireMeta(r.ctx, wid)
  const resumeFrom = r.req.headers['last-event-id'] ?? r.url.searchParams.get('after') ?? undefined
  const after = resumeFrom === undefined ? meta.head : parse(Version, resumeFrom)
  const path = r.url.searchParams.get('path') ?? undefined
  const { res } = r
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  res.write(`retry: 1000\n: accord change stream for ${wid} after version ${after}\n\n`)
  r.ctx.streams.add(res)
  const unsubscribe = await r.ctx.feed.subscribe(wid, { after, path }, record => {
    res.write(`id: ${record.version}\nevent: change\ndata: ${JSON.stringify(record)}\n\n`)
  })
  const keepAlive = setInterval(() => { res.write(': keep-alive\n\n') }, r.ctx.keepAliveMs)
  const stop = (): void => {
    clearInterval(keepAlive)
    unsubscribe()
    r.ctx.streams.delete(res)
  }
  res.on('close', stop)
  if (res.destroyed) stop()
}

/** Handles a /v1 request; returns false when the path is not part of the API. */
export const handleApi = async (ctx: HttpContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
  const url = new URL(req.url ?? '/', 'http://accord')
  if (!url.pathname.startsWith('/v1/')) return false
  try {
    const header = req.headers.authorization
    const claimed = req.headers['x-accord-agent']
    const principal = await ctx.authenticate(header?.startsWith('Bearer ') === true ? header.slice(7).trim() : undefined, typeof claimed === 'string' ? claimed : null)
    const isEvents = /^\/v1\/workflows\/[^/]+\/events$/.test(url.pathname)
    if (isEvents && req.method === 'GET') {
      const wid = decode(url.pathname.split('/')[3] as string, 'the path')
      if (!principal.can(wid, 'read')) throw new ForbiddenError(`${principal.agentId} may not read ${wid}`)
      await events({ req, res, url, params: { id: wid }, principal, ctx })
      return true
    }
    for (const { method, pattern, right, handler } of routes) {
      const match = pattern.exec(url.pathname)
      if (match === null || method !== req.method) continue
      const params = Object.fromEntries(Object.entries(match.groups ?? {}).map(([k, v]) => [k, decode(v, 'the path')]))
      if (right !== null && params.id !== undefined && !principal.can(params.id, right)) {
        throw new ForbiddenError(`${principal.agentId} may not ${req.method} ${url.pathname} (needs ${right} on ${params.id})`)
      }
      const result = await handler({ req, res, url, params, principal, ctx })
      if (result === undefined) {
        if (!res.headersSent) res.writeHead(res.statusCode === 200 ? 204 : res.statusCode).end()
      } else {
        send(res, res.statusCode, result)
      }
      return true
    }
    const known = routes.some(route => route.pattern.test(url.pathname))
    throw new HttpError(known ? 'INVALID_REQUEST' : 'NOT_FOUND', known ? `${req.method} is not supported on ${url.pathname}` : `no route ${url.pathname}`)
  } catch (err) {
    if (!res.headersSent) sendError(res, err, ctx.log)
    else res.end()
    return true
  }
}
