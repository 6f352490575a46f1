/**
 * The routes of `accord serve --workers` that span every shard, answered by the primary from
 * every worker's answer, so a client sees one server: the workflow list (merged by id), metrics
 * (summed by prom-client's AggregatorRegistry), readiness (ready when every worker is), the list
 * feed (every worker's SSE events in one stream) and the backup (one stream, one checksum).
 * Any worker's refusal (401, 403) is the answer as it is: auth is checked by the workers.
 *
 *   await fanIn.list(req, res)
 */
import type http from 'node:http'
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import { AccordError } from '../../src/model/errors.ts'
import { streamMergedBackup } from '../ops/backup.ts'
import type { WorkerPool } from './pool.ts'
import { endToEnd, sendUnavailable, type Answer, type WorkerLink } from './relay.ts'

export interface FanIn {
  list: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>
  metrics: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>
  ready: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>
  watch: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>
  backup: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>
}

const KEEP_ALIVE_MS = 15_000

export const createFanIn = (pool: WorkerPool, links: WorkerLink[]): FanIn => {
  const askAll = (method: string, path: string, headers: http.IncomingHttpHeaders): Promise<Answer[]> =>
    Promise.all(links.map(link => link.ask(method, path, headers)))
  /** The first refusal, passed on as the worker gave it; true when every answer was 200. */
  const allOk = (answers: Answer[], res: http.ServerResponse): boolean => {
    const refused = answers.find(a => a.status !== 200)
    if (refused === undefined) return true
    res.writeHead(refused.status, endToEnd(refused.headers)).end(refused.body)
    return false
  }
  const guarded = (fn: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>) =>
    async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
      try {
        await fn(req, res)
      } catch (err) {
        if (err instanceof AccordError) sendUnavailable(res, err)
        else res.destroy(err as Error)
      }
    }

  return {
    list: guarded(async (req, res) => {
      const answers = await askAll('GET', req.url ?? '/v1/workflows', req.headers)
      if (!allOk(answers, res)) return
      const rows = answers.flatMap(a => JSON.parse(a.body.toString('utf8')) as Array<{ workflowId: string }>)
      rows.sort((a, b) => a.workflowId < b.workflowId ? -1 : a.workflowId > b.workflowId ? 1 : 0)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(rows))
    }),

    metrics: guarded(async (req, res) => {
      const answers = await askAll('GET', '/metrics?format=json', req.headers)
      if (!allOk(answers, res)) return
      const merged = AggregatorRegistry.aggregate(answers.map(a => JSON.parse(a.body.toString('utf8')) as Array<MetricObjectWithValues<MetricValue<string>>>))
      res.writeHead(200, { 'content-type': merged.contentType }).end(await merged.metrics())
    }),

    ready: async (req, res) => {
      const workers = pool.describe()
      const answers = await Promise.all(workers.map(async w => w.state !== 'ready'
        ? null
        : (links[w.index] as WorkerLink).ask('GET', '/readyz', req.headers).catch(() => null)))
      const bodies = answers.map(a => a === null ? null : JSON.parse(a.body.toString('utf8')) as { ready: boolean, corruptWorkflows: unknown[], serverId?: string })
      const ready = bodies.every(b => b?.ready === true)
      const corruptWorkflows = bodies.flatMap(b => b?.corruptWorkflows ?? [])
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({
        ready,
        state: ready ? 'listening' : 'degraded',
        degraded: corruptWorkflows.length > 0,
        corruptWorkflows,
        // In cluster mode each worker is a cluster member: its id is what a writer lease names.
        workers: workers.map((w, i) => ({ ...w, ready: bodies[i]?.ready === true, ...(bodies[i]?.serverId === undefined ? {} : { serverId: bodies[i]?.serverId }) }))
      }))
    },

    watch: guarded(async (req, res) => {
      const streams = await Promise.all(links.map(link => link.open('GET', req.url ?? '/', req.headers)))
      const refused = streams.find(s => s.statusCode !== 200)
      if (refused !== undefined) {
        for (const s of streams) if (s !== refused) s.destroy()
        res.writeHead(refused.statusCode ?? 502, endToEnd(refused.headers))
        refused.pipe(res)
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
      res.write('retry: 1000\n: accord workflow list feed\n\n')
      const keepAlive = setInterval(() => { res.write(': keep-alive\n\n') }, KEEP_ALIVE_MS)
      const end = (): void => {
        clearInterval(keepAlive)
        for (const s of streams) s.destroy()
        res.end()
      }
      // Whole events only, so two workers' events never interleave mid-event; their own
      // preambles and keep-alives (comments) stay behind. One stream ending ends the feed: the
      // client's EventSource reconnects and so hears every worker again.
      for (const s of streams) {
        let text = ''
        s.setEncoding('utf8')
        s.on('data', (chunk: string) => {
          text += chunk
          let cut = text.indexOf('\n\n')
          while (cut >= 0) {
            const event = text.slice(0, cut + 2)
            text = text.slice(cut + 2)
            if (event.startsWith('event:') || event.startsWith('data:')) res.write(event)
            cut = text.indexOf('\n\n')
          }
        })
        s.on('end', end)
        s.on('error', end)
      }
      res.on('close', end)
    }),

    backup: guarded(async (req, res) => {
      // Asked first for the answer of each, so a refusal (no admin right) is a clean 403.
      const [head, ...rest] = links as [WorkerLink, ...WorkerLink[]]
      const first = await head.open('GET', '/v1/admin/backup', req.headers)
      if (first.statusCode !== 200) {
        res.writeHead(first.statusCode ?? 502, endToEnd(first.headers))
        first.pipe(res)
        return
      }
      const shards = [async () => first, ...rest.map(link => async () => {
        const s = await link.open('GET', '/v1/admin/backup', req.headers)
        if (s.statusCode !== 200) throw new AccordError('WORKFLOW_UNAVAILABLE', `worker ${link.index} refused its part of the backup (${s.statusCode ?? 0})`)
        return s
      })]
      try {
        await streamMergedBackup(shards, res)
      } catch {
        // Past the headers an error can only cut the stream; the missing trailer tells the client.
        res.destroy()
      }
    })
  }
}
