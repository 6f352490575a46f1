/**
 * createServer: an HTTP server whose WebSocket upgrades at /<workflowId> speak the standard
 * y-websocket protocol. Lifecycle: createServer() -> listen() -> close(); close() flushes every
 * workflow and releases sockets, timers and the store, so many servers can share one process.
 */
import http from 'node:http'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { CloseCodes } from '../src/close-codes.ts'
import { ClosedError } from '../src/errors.ts'
import { isValidWorkflowId } from '../src/workflow-id.ts'
import { Connection } from './connection.ts'
import { createLogger, type Logger, type LoggerOptions } from './log.ts'
import { createRegistry, type Registry } from './registry.ts'
import { openLevelStore } from './store/level.ts'
import type { Store } from './store/store.ts'

export interface ServerOptions {
  /** Default 1234; 0 picks a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** LevelDB directory, default ./data. Ignored when `store` is given. */
  dataDir?: string
  /** A store to use instead of opening LevelDB at dataDir; the caller keeps ownership. */
  store?: Store
  /** Largest accepted message in bytes (default 16 MiB); larger closes with 4413. */
  maxMessageSize?: number
  /** How long a workflow stays in memory after its last connection left (default 5000 ms). */
  evictionGraceMs?: number
  /** Log entries per workflow before they are compacted into a keyframe (default 1000). */
  compactEvery?: number
  /** Write attempts before a workflow is stopped (default 4). */
  writeAttempts?: number
  /** Interval of WebSocket pings that detect dead peers (default 30000 ms). */
  pingIntervalMs?: number
  /** A logger, or options for the built-in JSON logger. */
  log?: Logger | LoggerOptions
}

export interface AccordServer {
  /** Opens the store and starts listening; resolves with the bound address. */
  listen: () => Promise<{ host: string, port: number, url: string }>
  close: () => Promise<void>
  /** Ids of workflows currently held in memory. */
  loadedWorkflows: () => string[]
  /** Number of open WebSocket connections. */
  connectionCount: () => number
  /** The store (available after listen()). */
  readonly store: Store
}

const isLogger = (value: unknown): value is Logger =>
  typeof value === 'object' && value !== null && typeof (value as Logger).info === 'function'

export const createServer = (options: ServerOptions = {}): AccordServer => {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 1234
  const maxMessageSize = options.maxMessageSize ?? 16 * 1024 * 1024
  const log = isLogger(options.log) ? options.log : createLogger(options.log)
  const ownsStore = options.store === undefined

  let store: Store | null = options.store ?? null
  let registry: Registry | null = null
  let httpServer: http.Server | null = null
  let wss: WebSocketServer | null = null
  let state: 'new' | 'listening' | 'closing' | 'closed' = 'new'
  const connections = new Set<Connection>()

  const onConnection = (ws: WebSocket, req: http.IncomingMessage, reg: Registry): void => {
    let id = ''
    try {
      id = decodeURIComponent(new URL(req.url ?? '/', 'http://accord').pathname.slice(1))
    } catch {}
    if (!isValidWorkflowId(id)) {
      log.warn('rejected connection', { reason: 'invalid workflow id', path: req.url?.slice(0, 200) })
      ws.close(CloseCodes.invalidWorkflowId.code, CloseCodes.invalidWorkflowId.reason)
      return
    }
    const conn = new Connection(ws, id, {
      maxMessageSize,
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      log,
      onClose: c => {
        connections.delete(c)
        if (c.workflow !== null) reg.release(c.workflow)
      }
    })
    connections.add(conn)
    reg.acquire(id).then(
      workflow => {
        if (conn.isClosed) reg.release(workflow)
        else conn.attach(workflow)
      },
      (err: Error) => { conn.close(CloseCodes.loadFailure, err.message) }
    )
  }

  const listen = async (): Promise<{ host: string, port: number, url: string }> => {
    if (state !== 'new') throw new ClosedError('server (listen() may be called once)')
    state = 'listening'
    if (store === null) store = await openLevelStore(path.resolve(options.dataDir ?? './data'))
    const reg = createRegistry({
      store,
      log,
      graceMs: options.evictionGraceMs ?? 5000,
      compactEvery: options.compactEvery ?? 1000,
      writeAttempts: options.writeAttempts ?? 4
    })
    registry = reg
    // ws enforces a hard ceiling while reading (1009); our own check gives 4413 below it.
    const server = http.createServer((req, res) => {
      const body = req.url === '/healthz' ? { ok: true } : { error: { code: 'NOT_FOUND', message: 'not found' } }
      res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    })
    const sockets = new WebSocketServer({ noServer: true, maxPayload: maxMessageSize * 2 })
    server.on('upgrade', (req, socket, head) => {
      if (state !== 'listening') {
        socket.destroy()
        return
      }
      sockets.handleUpgrade(req, socket, head, ws => { onConnection(ws, req, reg) })
    })
    httpServer = server
    wss = sockets
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const addr = server.address() as AddressInfo
    const url = `ws://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
    log.info('accord listening', { url, dataDir: ownsStore ? path.resolve(options.dataDir ?? './data') : undefined })
    return { host: addr.address, port: addr.port, url }
  }

  const close = async (): Promise<void> => {
    if (state === 'closed' || state === 'closing') return
    state = 'closing'
    for (const conn of Array.from(connections)) conn.close(CloseCodes.shuttingDown)
    wss?.close()
    if (httpServer !== null) {
      const server = httpServer
      server.closeAllConnections()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
    await registry?.close()
    if (ownsStore) await store?.close()
    state = 'closed'
  }

  return {
    listen,
    close,
    loadedWorkflows: () => registry?.loaded() ?? [],
    connectionCount: () => connections.size,
    get store () {
      if (store === null) throw new ClosedError('server store (call listen() first)')
      return store
    }
  }
}
