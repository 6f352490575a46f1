/**
 * The inspector at /ui: serves the single-page app built into dist/ui (esbuild, see
 * docs/inspector.md) and the live feed its workflow list needs, which the per-workflow change
 * stream cannot give: `GET /v1/watch/workflows` (Server-Sent Events), one `workflow` event per
 * persisted version of any workflow the caller may read. EventSource cannot send headers, so
 * the token may also come as `?token=`.
 *
 *   const watch = createListWatch()          // server.ts: watch.publish(record) after each version
 *   if (await handleUi(ctx, req, res)) return // before the /v1 API
 */
import type http from 'node:http'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { AccordError } from '../../src/model/errors.ts'
import type { VersionRecord } from '../../src/model/schema.ts'
import type { Principal } from './auth.ts'
import { sendError } from './router.ts'

/** One event of the list feed: a workflow reached a new version. */
export const WorkflowEventSchema = z.object({
  workflowId: z.string(),
  version: z.number().int().positive(),
  updatedAt: z.number().int(),
  author: z.string()
})
export type WorkflowEvent = z.infer<typeof WorkflowEventSchema>

export interface ListWatch {
  publish: (record: VersionRecord) => void
  subscribe: (listener: (event: WorkflowEvent) => void) => () => void
}

export const createListWatch = (): ListWatch => {
  const listeners = new Set<(event: WorkflowEvent) => void>()
  return {
    publish: record => {
      if (listeners.size === 0) return
      const event = { workflowId: record.workflowId, version: record.version, updatedAt: record.timestamp, author: record.author }
      for (const listener of listeners) listener(event)
    },
    subscribe: listener => {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    }
  }
}

export interface UiContext {
  /** Directory of the built app, or null when the inspector is turned off. */
  dir: string | null
  watch: ListWatch
  authenticate: (token: string | undefined, claimed: string | null) => Promise<Principal>
  keepAliveMs: number
  /** Open SSE responses, ended on close. */
  streams: Set<http.ServerResponse>
}

/** dist/ui next to the compiled server (dist/server/http -> dist/ui), or from the sources (server/http -> dist/ui). */
export const defaultUiDir = (): string => {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const compiled = path.resolve(here, '../../ui')
  return existsSync(path.join(compiled, 'app.js')) ? compiled : path.resolve(here, '../../dist/ui')
}

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png', '.map': 'application/json' }

/** The page shell: every /ui/* path that is not an asset gets it, so shared URLs load the app. */
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>Accord inspector</title>
<link rel="stylesheet" href="/ui/app.css"></head>
<body><div id="app"></div><script type="module" src="/ui/app.js"></script></body></html>`

class UiError extends AccordError {}

const bearer = (req: http.IncomingMessage, url: URL): string | undefined => {
  const header = req.headers.authorization
  if (header?.startsWith('Bearer ') === true) return header.slice(7).trim()
  return url.searchParams.get('token') ?? undefined
}

const watchWorkflows = async (ctx: UiContext, req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> => {
  const principal = await ctx.authenticate(bearer(req, url), null)
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  res.write('retry: 1000\n: accord workflow list feed\n\n')
  ctx.streams.add(res)
  const unsubscribe = ctx.watch.subscribe(event => {
    if (principal.can(event.workflowId, 'read')) res.write(`event: workflow\ndata: ${JSON.stringify(event)}\n\n`)
  })
  const keepAlive = setInterval(() => { res.write(': keep-alive\n\n') }, ctx.keepAliveMs)
  const stop = (): void => {
    clearInterval(keepAlive)
    unsubscribe()
    ctx.streams.delete(res)
  }
  res.on('close', stop)
  if (res.destroyed) stop()
}

const serveApp = async (dir: string, pathname: string, res: http.ServerResponse): Promise<void> => {
  const name = pathname.slice('/ui/'.length)
  const ext = path.extname(name)
  if (/^[\w.-]+$/.test(name) && TYPES[ext] !== undefined) {
    const body = await readFile(path.join(dir, name)).catch(() => null)
    if (body === null) throw new UiError('NOT_FOUND', `no file /ui/${name}${existsSync(dir) ? '' : ' (the inspector is not built: run npm run build)'}`)
    res.writeHead(200, { 'content-type': TYPES[ext] as string, 'content-length': body.length, 'cache-control': 'no-cache' }).end(body)
    return
  }
  if (!existsSync(path.join(dir, 'app.js'))) throw new UiError('NOT_FOUND', `the inspector is not built (no ${path.join(dir, 'app.js')}): run npm run build`)
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }).end(PAGE)
}

/** Handles /ui, /ui/* and the list feed; returns false for every other path. */
export const handleUi = async (ctx: UiContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
  const url = new URL(req.url ?? '/', 'http://accord')
  const { pathname } = url
  if (pathname === '/v1/watch/workflows' && req.method === 'GET') {
    try {
      await watchWorkflows(ctx, req, res, url)
    } catch (err) {
      sendError(res, err)
    }
    return true
  }
  if (ctx.dir === null || (pathname !== '/ui' && !pathname.startsWith('/ui/'))) return false
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new UiError('INVALID_REQUEST', `${req.method} is not supported on ${pathname}`)
    if (pathname === '/ui') res.writeHead(302, { location: '/ui/' }).end()
    else await serveApp(ctx.dir, pathname, res)
  } catch (err) {
    sendError(res, err)
  }
  return true
}
