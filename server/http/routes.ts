/**
 * Every HTTP route of the server, in one table (method, path, who may call it, handler), and
 * the one dispatch that serves a request from it. WebSocket upgrades are not routes: they go to
 * server/sync/admission.ts.
 *
 *   http.createServer(createRequestListener(ctx, guard))
 *
 * A request matching no row gets 404 `NOT_FOUND` ("no route /x"), or 400 `INVALID_REQUEST`
 * ("PUT is not supported on /x") when its path has rows for other methods; under /v1/ the caller
 * is authenticated first, so a caller without a valid token learns nothing about which routes
 * exist. Errors are `{ error: { code, message, details } }` with the status of their code.
 */
import type http from 'node:http'
import { ForbiddenError, bearerToken, type Principal, type Right } from './auth.ts'
import type { OriginGuard } from './origin.ts'
import * as api from './api.ts'
import * as ops from './ops-routes.ts'
import * as rt from './runtime-api.ts'
import * as ui from './ui.ts'
import { HttpError, RESPONDED, decode, send, sendError, type Handler, type HttpContext, type PublicHandler, type PublicRequest } from './router.ts'

/**
 * Who may call a route: `public` without authentication (health, the inspector's files, MCP,
 * which authenticates itself), `caller` any authenticated caller (the handler checks rights),
 * or a right the caller must hold on the `:id` workflow.
 */
export type Access = 'public' | 'caller' | Right

export interface RouteOptions {
  /** The token may also come as `?token=` (EventSource cannot send headers). */
  tokenInQuery?: boolean
  /** The route exists only while this holds (the inspector and MCP are optional). */
  when?: (ctx: HttpContext) => boolean
}

/** One row of the route table. `methods` '*' takes every method. */
export type Route = {
  readonly methods: readonly string[] | '*'
  readonly path: string
  readonly pattern: RegExp
  readonly tokenInQuery: boolean
  readonly when: ((ctx: HttpContext) => boolean) | undefined
} & ({ readonly access: 'public', readonly handler: PublicHandler } | { readonly access: 'caller' | Right, readonly handler: Handler })

type RouteFn = {
  (method: string | readonly string[], path: string, access: 'public', handler: PublicHandler, options?: RouteOptions): Route
  (method: string | readonly string[], path: string, access: 'caller' | Right, handler: Handler, options?: RouteOptions): Route
}

/** `:name` segments become params (percent-decoded); a trailing `/*` matches any rest, undecoded. */
const compile = (path: string): RegExp =>
  new RegExp('^' + path.replace(/:(\w+)/g, '(?<$1>[^/]+)').replace(/\/\*$/, '/.*') + '$')

/** One row: `route('GET', '/v1/workflows/:id', 'read', handler)`. */
export const route: RouteFn = (method, path, access, handler, options = {}) => ({
  methods: method === '*' ? '*' : typeof method === 'string' ? [method] : method,
  path,
  pattern: compile(path),
  tokenInQuery: options.tokenInQuery === true,
  when: options.when,
  access,
  handler
} as Route)

const inspectorOn = (ctx: HttpContext): boolean => ctx.uiDir !== null
const mcpOn = (ctx: HttpContext): boolean => ctx.mcp !== null

export const ROUTES: readonly Route[] = [
  // operations (ops-routes.ts)
  route('*', '/healthz', 'public', ops.healthz),
  route('*', '/readyz', 'public', ops.readyz),
  route('*', '/metrics', 'caller', ops.metrics),
  route('GET', '/v1/admin/backup', 'caller', ops.backup),

  // MCP over Streamable HTTP (mcp-endpoint.ts: it checks origins and tokens itself)
  route('*', '/mcp', 'public', async r => {
    await r.ctx.mcp?.handle(r.req, r.res)
    return RESPONDED
  }, { when: mcpOn }),

  // the inspector (ui.ts)
  route(['GET', 'HEAD'], '/ui', 'public', ui.redirectToApp, { when: inspectorOn }),
  route(['GET', 'HEAD'], '/ui/*', 'public', ui.serveApp, { when: inspectorOn }),
  route('GET', '/v1/watch/workflows', 'caller', ui.watchWorkflows, { tokenInQuery: true }),

  // workflows, state, history, snapshots, forks (api.ts)
  route('GET', '/v1/workflows', 'caller', api.listWorkflows),
  route('POST', '/v1/workflows', 'write', api.createWorkflow),
  route('GET', '/v1/workflows/:id', 'read', api.getState),
  route('PATCH', '/v1/workflows/:id', 'write', api.patchState),
  route('DELETE', '/v1/workflows/:id', 'admin', api.deleteWorkflow),
  route('GET', '/v1/workflows/:id/events', 'caller', api.events, { tokenInQuery: true }),
  route('GET', '/v1/workflows/:id/history', 'read', api.getHistory),
  route('GET', '/v1/workflows/:id/diff', 'read', api.getDiff),
  route('GET', '/v1/workflows/:id/snapshots', 'read', api.listSnapshots),
  route('POST', '/v1/workflows/:id/snapshots', 'write', api.createSnapshot),
  route('DELETE', '/v1/workflows/:id/snapshots/:snapshotId', 'admin', api.deleteSnapshot),
  route('POST', '/v1/workflows/:id/restore', 'write', api.restore),
  route('POST', '/v1/workflows/:id/fork', 'admin', api.fork),
  route('POST', '/v1/workflows/:id/promote', 'admin', api.promote),
  route('POST', '/v1/workflows/:id/discard', 'admin', api.discard),
  route('GET', '/v1/workflows/:id/conflicts', 'read', api.conflicts),
  route('GET', '/v1/workflows/:id/violations', 'read', api.violations),

  // the agent runtime: lifecycle, pause/resume, tasks (runtime-api.ts)
  route('GET', '/v1/workflows/:id/runtime', 'read', rt.getRuntime),
  route('POST', '/v1/workflows/:id/agents/:agentId/transition', 'write', rt.transition),
  route('POST', '/v1/workflows/:id/agents/:agentId/soft-reset', 'write', rt.softReset),
  route('POST', '/v1/workflows/:id/pause', 'write', rt.pause),
  route('POST', '/v1/workflows/:id/resume', 'write', rt.resume),
  route('GET', '/v1/workflows/:id/tasks', 'read', rt.listTasks),
  route('POST', '/v1/workflows/:id/tasks', 'write', rt.pushTask),
  route('POST', '/v1/workflows/:id/tasks/claim', 'write', rt.claim),
  route('POST', '/v1/workflows/:id/tasks/:taskId/complete', 'write', rt.complete),
  route('POST', '/v1/workflows/:id/tasks/:taskId/fail', 'write', rt.fail)
]

const principalOf = (ctx: HttpContext, req: http.IncomingMessage, url: URL, tokenInQuery: boolean): Promise<Principal> => {
  const claimed = req.headers['x-accord-agent']
  const token = bearerToken(req.headers.authorization) ?? (tokenInQuery ? url.searchParams.get('token') ?? undefined : undefined)
  return ctx.authenticate(token, typeof claimed === 'string' ? claimed : null)
}

/** Serves one request from `routes`: the row whose path and method match, else 404 / 400. */
export const dispatch = async (routes: readonly Route[], ctx: HttpContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
  try {
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://accord')
    } catch {
      throw new HttpError('INVALID_REQUEST', 'malformed request URL')
    }
    const rows = routes.filter(r => (r.when === undefined || r.when(ctx)) && r.pattern.test(url.pathname))
    const row = rows.find(r => r.methods === '*' || r.methods.includes(req.method ?? 'GET'))
    if (row === undefined) {
      if (url.pathname.startsWith('/v1/')) await principalOf(ctx, req, url, rows.some(r => r.tokenInQuery))
      throw rows.length > 0
        ? new HttpError('INVALID_REQUEST', `${req.method} is not supported on ${url.pathname}`)
        : new HttpError('NOT_FOUND', `no route ${url.pathname}`)
    }
    // Authenticated before the path is decoded: a malformed path from a stranger is a 401, not a 400.
    const principal = row.access === 'public' ? null : await principalOf(ctx, req, url, row.tokenInQuery)
    const groups = row.pattern.exec(url.pathname)?.groups ?? {}
    const params = Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, decode(v, 'the path')]))
    const base: PublicRequest = { req, res, url, params, ctx }
    let result: unknown
    if (row.access === 'public') result = await row.handler(base)
    else {
      const caller = principal as Principal
      const right = row.access
      if (right !== 'caller' && params.id !== undefined && !caller.can(params.id, right)) {
        throw new ForbiddenError(`${caller.agentId} may not ${req.method} ${url.pathname} (needs ${right} on ${params.id})`)
      }
      result = await row.handler({ ...base, principal: caller })
    }
    if (result === RESPONDED) return
    if (result !== undefined) send(res, res.statusCode, result)
    else if (!res.headersSent) res.writeHead(res.statusCode === 200 ? 204 : res.statusCode).end()
  } catch (err) {
    if (!res.headersSent) sendError(res, err, ctx.log)
    else res.end()
  }
}

/**
 * The HTTP server's request listener. Without auth the origin guard (origin.ts) refuses web
 * pages first (403); with auth it lets everything through and tokens decide.
 */
export const createRequestListener = (ctx: HttpContext, guard: OriginGuard) => (req: http.IncomingMessage, res: http.ServerResponse): void => {
  const refusal = guard(req)
  if (refusal !== null) {
    ctx.log.warn('refused request', { reason: refusal, method: req.method })
    sendError(res, new ForbiddenError(refusal))
    return
  }
  void dispatch(ROUTES, ctx, req, res)
}
