/**
 * The handlers of the HTTP JSON API under /v1 (for agents that do not speak Yjs) and of the live
 * change stream (Server-Sent Events); their methods, paths and rights are rows of the route
 * table in routes.ts, the agent runtime's handlers are in runtime-api.ts. Every error is
 * `{ error: { code, message, details } }` with the status of its code (STATUS in router.ts).
 * Writes are CRDT changes authored by the caller and merge with concurrent Yjs edits.
 */
import { z } from 'zod'
import { InvalidPatchError, SchemaViolationError } from '../../src/model/errors.ts'
import { assertJson, type JsonObject } from '../../src/model/json.ts'
import { readState, setMapContents, stateRoot } from '../../src/model/json-yjs.ts'
import { applyPatchToJson, applyPatchToYjs } from '../../src/model/patch.ts'
import { JsonPatchOpSchema, SnapshotKindSchema } from '../../src/model/schema.ts'
import { assertWorkflowId } from '../../src/model/workflow-id.ts'
import { ForbiddenError, pathMatches } from './auth.ts'
import { ifMatch, intArg } from './args.ts'
import {
  HttpError, OptionalVersion, etag, headOf, id, parse, precondition, queryInt, readBody, stateOf, versionArg, write,
  type Handler, type HttpContext
} from './router.ts'
import * as history from '../history/history.ts'

export const listWorkflows: Handler = async r => {
  const metas = await r.ctx.store.listWorkflows()
  return metas.filter(m => r.principal.can(m.id, 'read')).map(m => ({ workflowId: m.id, version: m.head, createdAt: m.createdAt, updatedAt: m.updatedAt, forkOf: m.forkOf ?? null }))
}

export const createWorkflow: Handler = async r => {
  const body = parse(z.object({ workflowId: z.string(), state: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  const wid = assertWorkflowId(body.workflowId)
  if (!r.principal.can(wid, 'write')) throw new ForbiddenError(`no write access to ${wid}`)
  if (await r.ctx.store.getMeta(wid) !== null || r.ctx.registry.get(wid) !== undefined) throw new HttpError('CONFLICT', `workflow ${wid} exists`)
  const state = (body.state ?? {}) as JsonObject
  assertJson(state)
  checkSchema(r.ctx, wid, state)
  const version = await r.ctx.withWorkflow(wid, async wf => {
    const v = await write(wf, r, 'created over HTTP', () => { setMapContents(stateRoot(wf.doc), state) })
    // An empty state writes no update, so no version and no stored meta: store the meta itself,
    // or the workflow would be missing from the list. Head checked in the same turn as the put,
    // so a version cut (which makes its meta current synchronously) cannot be overwritten.
    if (await r.ctx.store.getMeta(wid) === null && wf.head === 0) await r.ctx.store.putMeta(wf.currentMeta)
    return v
  })
  r.res.statusCode = 201
  return { workflowId: wid, version, state }
}

const checkSchema = (ctx: HttpContext, wid: string, state: JsonObject): void => {
  const schema = ctx.schemaFor(wid)
  if (schema === undefined) return
  const result = schema.safeParse(state)
  if (!result.success) {
    throw new SchemaViolationError(result.error.issues.map(i => ({ path: i.path.map(p => typeof p === 'symbol' ? String(p) : p), message: i.message, code: i.code })))
  }
}

export const getState: Handler = async r => {
  const versionParam = r.url.searchParams.get('version')
  if (versionParam !== null) {
    const version = await versionArg(r, '?version', versionParam)
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
}

export const patchState: Handler = async r => {
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
    const match = ifMatch(r.req.headers['if-match'])
    if (match !== null && !match.includes(wf.head)) {
      throw precondition(`version moved: If-Match expected the current version ${etag(wf.head)}, got ${match.map(etag).join(', ')}`)
    }
    const next = applyPatchToJson(readState(wf.doc), ops.data)
    assertJson(next)
    checkSchema(r.ctx, wid, next)
    const version = await write(wf, r, `patch by ${r.principal.agentId}`, () => { applyPatchToYjs(stateRoot(wf.doc), ops.data as never) })
    r.res.setHeader('etag', etag(version))
    return { workflowId: wid, version, state: readState(wf.doc) }
  })
}

export const deleteWorkflow: Handler = async r => {
  await history.deleteWorkflow(r.ctx, id(r))
  r.res.statusCode = 204
  return undefined
}

export const getHistory: Handler = async r => {
  const limit = queryInt(r, 'limit', 1, 1000)
  const beforeParam = r.url.searchParams.get('before')
  // before = head + 1 pages from the newest version, like no `before` at all.
  const before = beforeParam === null ? undefined : intArg('?before', beforeParam, 1, await headOf(r) + 1, 'the head version + 1')
  return history.history(r.ctx, id(r), { limit, before })
}

export const getDiff: Handler = async r => {
  const from = await versionArg(r, '?from', r.url.searchParams.get('from') ?? undefined)
  const to = await versionArg(r, '?to', r.url.searchParams.get('to') ?? undefined)
  return history.diff(r.ctx, id(r), from, to)
}

export const listSnapshots: Handler = async r => history.listSnapshots(r.ctx, id(r))

export const createSnapshot: Handler = async r => {
  const body = parse(z.object({ name: z.string().min(1).max(200), kind: z.optional(SnapshotKindSchema), description: z.string().max(2000).optional(), version: OptionalVersion }), await readBody(r))
  const version = body.version === undefined ? undefined : await versionArg(r, 'version', body.version)
  r.res.statusCode = 201
  return history.createSnapshot(r.ctx, id(r), { ...body, version, by: r.principal.agentId })
}

export const deleteSnapshot: Handler = async r => {
  await history.deleteSnapshot(r.ctx, id(r), r.params.snapshotId as string)
  r.res.statusCode = 204
  return undefined
}

export const restore: Handler = async r => {
  const body = parse(z.object({ version: OptionalVersion, snapshotId: z.string().optional() }), await readBody(r))
  const version = body.version === undefined ? undefined : await versionArg(r, 'version', body.version)
  return history.restore(r.ctx, id(r), { ...body, version, by: r.principal.agentId })
}

export const fork: Handler = async r => {
  const body = parse(z.object({ version: OptionalVersion }), await readBody(r))
  const version = body.version === undefined ? undefined : await versionArg(r, 'version', body.version)
  r.res.statusCode = 201
  return history.fork(r.ctx, id(r), { version, by: r.principal.agentId })
}

export const promote: Handler = async r => history.promote(r.ctx, id(r), { by: r.principal.agentId })

export const discard: Handler = async r => {
  await history.discard(r.ctx, id(r))
  r.res.statusCode = 204
  return undefined
}

export const conflicts: Handler = async r => history.conflicts(r.ctx, id(r))
export const violations: Handler = async r => history.violations(r.ctx, id(r))

/**
 * Server-Sent Events of change records. `Last-Event-ID` (or ?after=N) resumes after that version:
 * every missed record once, in order, then live ones; without it the stream starts now.
 */
export const events: Handler = async r => {
  const raw = r.params.id as string
  if (!r.principal.can(raw, 'read')) throw new ForbiddenError(`${r.principal.agentId} may not read ${raw}`)
  const wid = id(r)
  const meta = await history.requireMeta(r.ctx, wid)
  const lastEventId = r.req.headers['last-event-id']
  const afterParam = r.url.searchParams.get('after')
  const head = await headOf(r)
  const after = lastEventId !== undefined
    ? intArg('Last-Event-ID', lastEventId, 0, head, 'the head version')
    : afterParam !== null ? intArg('?after', afterParam, 0, head, 'the head version') : meta.head
  const path = r.url.searchParams.get('path') ?? undefined
  if (path !== undefined && path !== '' && !path.startsWith('/')) {
    throw new HttpError('INVALID_REQUEST', `?path must be a JSON pointer ("" or starting with /), got ${JSON.stringify(path)}`, { parameter: '?path', got: path })
  }
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
