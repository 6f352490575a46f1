/**
 * WebSocket admission: what happens to an upgrade at /<workflowId> before the socket speaks
 * y-websocket. In order: the origin guard (without auth; 4403), the workflow id (4400), the
 * per-workflow connection limit (4503), the token (4401) and the read right (4403); then the
 * workflow is loaded or reused (`registry.acquire`; 4503 when too many are loaded, 4500 when
 * the load fails) and the Connection (connection.ts) is attached to it. Input that arrives
 * meanwhile is buffered by the connection, so nothing is lost while the token is checked and
 * the workflow loads.
 *
 *   const admission = createAdmission({ registry, authenticate, guard, ... })
 *   httpServer.on('upgrade', admission.upgrade)
 *   admission.close()   // closes every connection (1001, shutting down)
 */
import type http from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { CloseCodes } from '../../src/model/close-codes.ts'
import { AGENT_PARAM, EXTENSION_PARAM } from '../../src/model/protocol.ts'
import { isValidWorkflowId } from '../../src/model/workflow-id.ts'
import { bearerToken, redactToken, type Authenticate } from '../http/auth.ts'
import type { OriginGuard } from '../http/origin.ts'
import type { Logger } from '../ops/log.ts'
import { Connection, type ConnectionOptions } from './connection.ts'
import type { Registry } from './registry.ts'

export interface AdmissionOptions {
  registry: Registry
  log: Logger
  authenticate: Authenticate
  /** Refuses web pages when the server has no auth (origin.ts); with auth, `() => null`. */
  guard: OriginGuard
  /** False once the server is closing: later upgrades are dropped. */
  isOpen: () => boolean
  maxMessageSize: number
  /** Connections per workflow; more close with 4503. */
  maxConnectionsPerWorkflow: number
  rate: ConnectionOptions['rate']
  pingIntervalMs: number
  /** Protocol-extension requests of an admitted connection (rpc.ts). */
  onRequest: ConnectionOptions['onRequest']
}

export interface Admission {
  /** The HTTP server's `upgrade` listener. */
  readonly upgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void
  /** Open connections (admitted or still being checked). */
  readonly count: () => number
  /** Closes every connection (1001, shutting down) and stops accepting upgrades. */
  readonly close: () => void
}

export const createAdmission = (opts: AdmissionOptions): Admission => {
  const { registry, log } = opts
  const connections = new Set<Connection>()
  const perWorkflow = new Map<string, number>()
  // ws enforces a hard ceiling while reading (1009); the connection's own check gives 4413 below it.
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxMessageSize * 2 })

  const admit = (ws: WebSocket, req: http.IncomingMessage): void => {
    let id = ''
    let params = new URLSearchParams()
    try {
      const url = new URL(req.url ?? '/', 'http://accord')
      id = decodeURIComponent(url.pathname.slice(1))
      params = url.searchParams
    } catch {}
    if (!isValidWorkflowId(id)) {
      log.warn('rejected connection', { reason: 'invalid workflow id', path: redactToken(req.url ?? '').slice(0, 200) })
      ws.close(CloseCodes.invalidWorkflowId.code, CloseCodes.invalidWorkflowId.reason)
      return
    }
    const peers = (perWorkflow.get(id) ?? 0) + 1
    if (peers > opts.maxConnectionsPerWorkflow) {
      log.warn('rejected connection', { reason: 'too many connections', workflowId: id, limit: opts.maxConnectionsPerWorkflow })
      ws.close(CloseCodes.tooManyConnections.code, `${CloseCodes.tooManyConnections.reason} (limit ${opts.maxConnectionsPerWorkflow})`)
      return
    }
    perWorkflow.set(id, peers)
    const conn = new Connection(ws, id, {
      maxMessageSize: opts.maxMessageSize,
      rate: opts.rate,
      pingIntervalMs: opts.pingIntervalMs,
      log,
      extended: params.get(EXTENSION_PARAM) === '1',
      onClose: c => {
        connections.delete(c)
        const left = (perWorkflow.get(c.workflowId) ?? 1) - 1
        if (left > 0) perWorkflow.set(c.workflowId, left)
        else perWorkflow.delete(c.workflowId)
        if (c.workflow !== null) registry.release(c.workflow)
      },
      onRequest: opts.onRequest
    })
    connections.add(conn)
    void opts.authenticate(params.get('token') ?? bearerToken(req.headers.authorization), params.get(AGENT_PARAM)).then(
      principal => {
        if (conn.isClosed) return
        if (!principal.can(id, 'read')) {
          log.warn('rejected connection', { reason: 'forbidden', workflowId: id, agent: principal.agentId })
          conn.close(CloseCodes.forbidden, `no read access to ${id}`)
          return
        }
        conn.authorize(principal)
        registry.acquire(id).then(
          workflow => {
            if (conn.isClosed) registry.release(workflow)
            else conn.attach(workflow)
          },
          (err: Error & { code?: string }) => { conn.close(err.code === 'LIMIT_EXCEEDED' ? CloseCodes.tooManyWorkflows : CloseCodes.loadFailure, err.message) }
        )
      },
      (err: Error) => {
        log.warn('rejected connection', { reason: err.message, workflowId: id })
        conn.close(CloseCodes.unauthorized, err.message)
      }
    )
  }

  const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (!opts.isOpen()) {
      socket.destroy()
      return
    }
    const refusal = opts.guard(req)
    wss.handleUpgrade(req, socket, head, ws => {
      if (refusal === null) {
        admit(ws, req)
        return
      }
      // Upgraded only to say why: a 4403 is final for clients, a failed upgrade is retried.
      log.warn('rejected connection', { reason: refusal })
      ws.close(CloseCodes.forbidden.code, Buffer.from(refusal).subarray(0, 123).toString('utf8').replace(/\uFFFD$/, ''))
    })
  }

  return {
    upgrade,
    count: () => connections.size,
    close: () => {
      for (const conn of Array.from(connections)) conn.close(CloseCodes.shuttingDown)
      wss.close()
    }
  }
}
