/**
 * The primary's listening server of `accord serve --workers N`: it owns the public port and sends
 * each request to the worker owning its workflow (shard-of.ts), so every client of a workflow
 * meets in one worker. WebSocket upgrades at /<workflowId> are handed over as sockets with the
 * bytes read so far (the worker then talks to the client directly: no copy through the
 * primary); under TLS, where a socket cannot change process, they are piped instead. HTTP
 * requests are relayed (relay.ts); the routes spanning every shard are answered from all
 * workers (fan-in.ts). Auth, origin checks and limits stay in the workers, unchanged.
 *
 *   const front = createFront({ pool, workers: 4, sharedStore: false, sharedFeed: false, log })
 *   const { url } = await front.listen(1234, '127.0.0.1')
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from '../ops/log.ts'
import { createFanIn } from './fan-in.ts'
import type { WorkerPool } from './pool.ts'
import { HttpError, sendError } from '../http/router.ts'
import { ROUTES } from '../http/routes.ts'
import { linkTo, WorkerUnavailableError, type WorkerLink } from './relay.ts'
import { shardOf } from './shard-of.ts'

export interface FrontOptions {
  pool: WorkerPool
  workers: number
  /** Every worker reads one store (PostgreSQL): the list and the backup come from any one. */
  sharedStore: boolean
  /** Every worker hears every version (the cluster bus): the list feed comes from any one. */
  sharedFeed: boolean
  /** Largest request body the primary reads to find a workflow id (POST /v1/workflows). */
  maxBodySize: number
  tls?: { cert: string | Buffer, key: string | Buffer }
  log: Logger
}

export interface Front {
  listen: (port: number, host: string) => Promise<{ host: string, port: number, url: string }>
  close: () => Promise<void>
}

/** The workflow a path names, or null (then worker 0 answers, including its errors). */
const idOf = (encoded: string | undefined): string | null => {
  if (encoded === undefined || encoded === '') return null
  try {
    return decodeURIComponent(encoded)
  } catch {
    return null
  }
}

/** The request line and headers as the client sent them, then what followed: for the worker's parser. */
const rawHead = (req: http.IncomingMessage, rest: Buffer): Buffer => {
  let text = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}\r\n`
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i] as string}: ${req.rawHeaders[i + 1] as string}\r\n`
  return Buffer.concat([Buffer.from(text + '\r\n', 'latin1'), rest])
}

const refuseUpgrade = (socket: Duplex, err: WorkerUnavailableError): void => {
  const body = JSON.stringify({ error: { code: err.code, message: err.message } })
  socket.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}

export const createFront = (o: FrontOptions): Front => {
  const links = Array.from({ length: o.workers }, (_, i) => linkTo(o.pool.socketPath(i), i))
  const fanIn = createFanIn(o.pool, links)
  let next = 0
  /** Some ready worker, round robin: for routes any worker answers the same. */
  const anyWorker = (): number => {
    for (let n = 0; n < o.workers; n++) {
      const i = (next + n) % o.workers
      if (o.pool.state(i) === 'ready') {
        next = i + 1
        return i
      }
    }
    return 0
  }
  const to = (i: number, req: http.IncomingMessage, res: http.ServerResponse, body?: Buffer): void => {
    (links[i] as WorkerLink).relay(req, res, body)
  }

  /** POST /v1/workflows names its workflow in the body: read it (bounded) to find the owner. */
  const create = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size <= o.maxBodySize) chunks.push(c)
    })
    req.on('end', () => {
      if (size > o.maxBodySize) {
        sendError(res, new HttpError('MESSAGE_TOO_LARGE', `body larger than ${o.maxBodySize} bytes`))
        return
      }
      const body = Buffer.concat(chunks)
      let id: string | null = null
      try {
        const parsed = JSON.parse(body.toString('utf8')) as { workflowId?: unknown }
        id = typeof parsed.workflowId === 'string' ? parsed.workflowId : null
      } catch { /* the worker answers the malformed body */ }
      to(id === null ? 0 : shardOf(id, o.workers), req, res, body)
    })
  }

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const pathname = (req.url ?? '/').split('?')[0] ?? '/'
    const get = req.method === 'GET' || req.method === 'HEAD'
    if (pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, workers: o.workers }))
    } else if (pathname === '/readyz') void fanIn.ready(req, res)
    else if (pathname === '/metrics') void fanIn.metrics(req, res)
    else if (pathname === '/v1/workflows' && req.method === 'POST') create(req, res)
    else if (pathname === '/v1/workflows' && get) o.sharedStore ? to(anyWorker(), req, res) : void fanIn.list(req, res)
    else if (pathname === '/v1/watch/workflows' && get) o.sharedFeed ? to(anyWorker(), req, res) : void fanIn.watch(req, res)
    else if (pathname === '/v1/admin/backup' && get) o.sharedStore ? to(anyWorker(), req, res) : void fanIn.backup(req, res)
    else {
      // The route table (routes.ts) says which paths name a workflow: its rows with `:id`.
      const id = idOf(ROUTES.map(r => r.pattern.exec(pathname)?.groups?.id).find(x => x !== undefined))
      // The inspector's files and every unknown path: worker 0 answers (its 404 is the server's).
      to(id === null ? 0 : shardOf(id, o.workers), req, res)
    }
  }

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const id = idOf(new URL(req.url ?? '/', 'http://accord').pathname.slice(1))
    const i = id === null ? 0 : shardOf(id, o.workers)
    if (o.pool.state(i) !== 'ready') {
      refuseUpgrade(socket, new WorkerUnavailableError(i))
      return
    }
    // Bytes the client sent after its request (already a first frame, say) go along too.
    const buffered = (socket as Socket).readableLength > 0 ? (socket as Socket).read() as Buffer : null
    const bytes = rawHead(req, buffered === null ? head : Buffer.concat([head, buffered]))
    if (o.tls === undefined) {
      // The primary keeps its copy of the descriptor open until the worker acknowledges the
      // handle, and Node does not stop reading it: the client's first frame (sent the moment the
      // worker's 101 arrives) would be read here and dropped. Stop reading before the hand-off.
      ;(socket as unknown as { _handle?: { readStop?: () => number } | null })._handle?.readStop?.()
      if (!o.pool.handOff(i, socket as Socket, bytes)) refuseUpgrade(socket, new WorkerUnavailableError(i))
      return
    }
    const upstream = (links[i] as WorkerLink).connect()
    upstream.on('error', () => { socket.destroy() })
    socket.on('error', () => { upstream.destroy() })
    upstream.write(bytes)
    upstream.pipe(socket).pipe(upstream)
  }

  const server: http.Server = o.tls === undefined ? http.createServer(onRequest) : https.createServer({ cert: o.tls.cert, key: o.tls.key }, onRequest)
  server.on('upgrade', onUpgrade)
  server.on('clientError', (_err, socket) => { socket.destroy() })

  return {
    listen: (port, host) => new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        const addr = server.address() as AddressInfo
        const scheme = o.tls === undefined ? 'ws' : 'wss'
        resolve({ host: addr.address, port: addr.port, url: `${scheme}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` })
      })
    }),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
      for (const link of links) link.close()
    }
  }
}
