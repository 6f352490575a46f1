/**
 * How the primary of `accord serve --workers` talks HTTP to a worker over its Unix socket:
 * relay a client's request as it is (streaming both ways, SSE included), or ask for a whole
 * response (the fan-in routes). Hop-by-hop headers stay on their own hop (RFC 9110 7.6.1).
 *
 *   relay(pool.socketPath(2), req, res)                       // the worker answers the client
 *   const { status, body } = await ask(pool.socketPath(0), 'GET', '/readyz', req.headers)
 */
import http from 'node:http'
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

/** Relays one request to the worker at `socketPath`; `body` when the primary already read it. */
export const relay = (socketPath: string, index: number, req: http.IncomingMessage, res: http.ServerResponse, agent: http.Agent, body?: Buffer): void => {
  const upstream = http.request({ socketPath, agent, method: req.method, path: req.url, headers: endToEnd(req.headers) })
  upstream.on('response', answer => {
    res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers))
    answer.pipe(res)
  })
  upstream.on('error', err => { sendUnavailable(res, new WorkerUnavailableError(index, err)) })
  // A client that leaves (an SSE reader, say) ends the worker's side too.
  res.on('close', () => { if (!res.writableFinished) upstream.destroy() })
  if (body !== undefined) upstream.end(body)
  else req.pipe(upstream)
}

export interface Answer { status: number, headers: http.IncomingHttpHeaders, body: Buffer }

/** One whole response from a worker; rejects with WorkerUnavailableError when it cannot be reached. */
export const ask = (socketPath: string, index: number, method: string, path: string, headers: http.IncomingHttpHeaders, agent: http.Agent): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const upstream = http.request({ socketPath, agent, method, path, headers: endToEnd(headers) }, answer => {
      const chunks: Buffer[] = []
      answer.on('data', (c: Buffer) => chunks.push(c))
      answer.on('end', () => { resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) }) })
      answer.on('error', err => { reject(new WorkerUnavailableError(index, err)) })
    })
    upstream.on('error', err => { reject(new WorkerUnavailableError(index, err)) })
    upstream.end()
  })

/** A streamed response from a worker (the SSE list feed, a backup). */
export const open = (socketPath: string, index: number, method: string, path: string, headers: http.IncomingHttpHeaders, agent: http.Agent): Promise<http.IncomingMessage> =>
  new Promise((resolve, reject) => {
    const upstream = http.request({ socketPath, agent, method, path, headers: endToEnd(headers) }, resolve)
    upstream.on('error', err => { reject(new WorkerUnavailableError(index, err)) })
    upstream.end()
  })
