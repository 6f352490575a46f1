/**
 * How the primary of `accord serve --workers` talks HTTP to a worker over its Unix socket:
 * relay a client's request as it is (streaming both ways, SSE included), or ask for a whole
 * response (the fan-in routes). Hop-by-hop headers stay on their own hop (RFC 9110 7.6.1).
 *
 *   const link = linkTo(pool.socketPath(2), 2)
 *   link.relay(req, res)                                        // the worker answers the client
 *   const { status, body } = await link.ask('GET', '/readyz', req.headers)
 */
import http from 'node:http'
import net from 'node:net'
import { AccordError } from '../../src/model/errors.ts'
import { sendError } from '../http/router.ts'

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'])

export const endToEnd = (headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders =>
  Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase())))

/** A worker is down (restarting): the client should retry. */
export class WorkerUnavailableError extends AccordError {
  constructor (index: number, cause?: unknown) {
    super('WORKFLOW_UNAVAILABLE', `worker ${index} is restarting; retry shortly`, { worker: index }, { cause })
    this.name = 'WorkerUnavailableError'
  }
}

/** A 503 with Retry-After (or a cut stream once the headers went out). */
export const sendUnavailable = (res: http.ServerResponse, err: AccordError): void => {
  if (res.headersSent) {
    res.destroy()
    return
  }
  res.setHeader('retry-after', '1')
  sendError(res, err)
}

export interface Answer { status: number, headers: http.IncomingHttpHeaders, body: Buffer }

/** The primary's line to one worker: its Unix socket and a keep-alive agent for it. */
export interface WorkerLink {
  readonly index: number
  /** Relays a client's request as it is; `body` when the primary already read it. */
  relay: (req: http.IncomingMessage, res: http.ServerResponse, body?: Buffer) => void
  /** A streamed response (the SSE list feed, a backup); rejects with WorkerUnavailableError. */
  open: (method: string, path: string, headers: http.IncomingHttpHeaders) => Promise<http.IncomingMessage>
  /** One whole response; rejects with WorkerUnavailableError. */
  ask: (method: string, path: string, headers: http.IncomingHttpHeaders) => Promise<Answer>
  /** A raw connection (an upgrade piped under TLS). */
  connect: () => net.Socket
  close: () => void
}

export const linkTo = (socketPath: string, index: number): WorkerLink => {
  const agent = new http.Agent({ keepAlive: true })
  const unavailable = (err: unknown): WorkerUnavailableError => new WorkerUnavailableError(index, err)
  const open: WorkerLink['open'] = (method, path, headers) => new Promise((resolve, reject) => {
    const upstream = http.request({ socketPath, agent, method, path, headers: endToEnd(headers) }, resolve)
    upstream.on('error', err => { reject(unavailable(err)) })
    upstream.end()
  })
  return {
    index,
    relay: (req, res, body) => {
      const upstream = http.request({ socketPath, agent, method: req.method, path: req.url, headers: endToEnd(req.headers) })
      upstream.on('response', answer => {
        res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers))
        answer.pipe(res)
      })
      upstream.on('error', err => { sendUnavailable(res, unavailable(err)) })
      // A client that leaves (an SSE reader, say) ends the worker's side too.
      res.on('close', () => { if (!res.writableFinished) upstream.destroy() })
      if (body !== undefined) upstream.end(body)
      else req.pipe(upstream)
    },
    open,
    ask: async (method, path, headers) => {
      const answer = await open(method, path, headers)
      const chunks: Buffer[] = []
      try {
        for await (const chunk of answer) chunks.push(chunk as Buffer)
      } catch (err) {
        throw unavailable(err)
      }
      return { status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) }
    },
    connect: () => net.connect(socketPath),
    close: () => { agent.destroy() }
  }
}
