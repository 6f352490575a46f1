/**
 * The operations endpoints' handlers: liveness (`/healthz`), readiness (`/readyz`), Prometheus
 * metrics (`/metrics`) and the streamed backup (`GET /v1/admin/backup`). Their rows, with who
 * may call them, are in the route table (routes.ts).
 */
import { AccordError } from '../../src/model/errors.ts'
import { streamBackup } from '../ops/backup.ts'
import type { Handler, PublicHandler } from './router.ts'

/** The process answers: nothing else is checked. */
export const healthz: PublicHandler = async r => {
  r.res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }))
}

/** Ready while listening. Corrupt workflows do not make the server unready: every other workflow still serves. */
export const readyz: PublicHandler = async r => {
  const { state, corruptWorkflows, serverId } = r.ctx.readiness()
  const ready = state === 'listening'
  r.res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
    .end(JSON.stringify({ ready, state, degraded: corruptWorkflows.length > 0, corruptWorkflows, ...(serverId === undefined ? {} : { serverId }) }))
}

/**
 * Any authenticated caller (anyone without auth). `?format=json` gives prom-client's JSON form,
 * which the primary of `accord serve --workers` sums over its workers.
 */
export const metrics: Handler = async r => {
  const registry = r.ctx.metrics.registry
  if (r.url.searchParams.get('format') === 'json') {
    r.res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(await registry.getMetricsAsJSON()))
    return
  }
  r.res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics())
}

/** The whole store as one stream (server/ops/backup.ts); needs admin on every workflow. */
export const backup: Handler = async r => {
  if (!r.principal.can('*', 'admin')) throw new AccordError('FORBIDDEN', 'backups need the admin right on every workflow (scope admin:*)')
  try {
    await streamBackup(r.ctx.store, r.res)
  } catch (err) {
    // Past the headers an error can only cut the stream; the missing trailer tells the client.
    if (!r.res.headersSent) throw err
    r.ctx.log.error('backup stream failed', { error: (err as Error).message })
    r.res.destroy()
  }
}
