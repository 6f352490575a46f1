/**
 * The inspector at /ui: serves the single-page app built into dist/ui (esbuild, see
 * docs/inspector.md), and the live feed its workflow list needs, which the per-workflow change
 * stream cannot give: `GET /v1/watch/workflows` (Server-Sent Events), one `workflow` event per
 * persisted version of any workflow the caller may read (server/sync/list-watch.ts). These are
 * the handlers; their rows are in the route table (routes.ts): the /ui ones exist only while
 * the inspector is on, the list feed always.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { AccordError } from '../../src/model/errors.ts'
import type { Handler, PublicHandler } from './router.ts'

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

/** GET /v1/watch/workflows: the list feed, filtered by the caller's read right. */
export const watchWorkflows: Handler = async r => {
  const { res, principal, ctx } = r
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

/** /ui: to /ui/, so the app's relative URLs resolve. */
export const redirectToApp: PublicHandler = async r => {
  r.res.writeHead(302, { location: '/ui/' }).end()
}

/** /ui/*: an asset of the build, or the page shell for any other path (so shared URLs load the app). */
export const serveApp: PublicHandler = async r => {
  const dir = r.ctx.uiDir as string
  const name = r.url.pathname.slice('/ui/'.length)
  const ext = path.extname(name)
  if (/^[\w.-]+$/.test(name) && TYPES[ext] !== undefined) {
    const body = await readFile(path.join(dir, name)).catch(() => null)
    if (body === null) throw new UiError('NOT_FOUND', `no file /ui/${name}${existsSync(dir) ? '' : ' (the inspector is not built: run npm run build)'}`)
    r.res.writeHead(200, { 'content-type': TYPES[ext] as string, 'content-length': body.length, 'cache-control': 'no-cache' }).end(body)
    return
  }
  if (!existsSync(path.join(dir, 'app.js'))) throw new UiError('NOT_FOUND', `the inspector is not built (no ${path.join(dir, 'app.js')}): run npm run build`)
  r.res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }).end(PAGE)
}
