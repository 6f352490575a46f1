/**
 * `accord serve --mcp`: the MCP server (src/mcp) over Streamable HTTP at `/mcp`, one MCP session
 * per client. Every request carries the same credentials as the rest of the server (Bearer JWT
 * when auth is on); the session talks to this server over loopback as that token's agent, so
 * scopes apply exactly as for any other client. `Origin` is validated (MCP spec, against DNS
 * rebinding): requests from browsers are accepted only from `allowedOrigins`, by default
 * loopback origins; requests without `Origin` (non-browser clients) pass.
 *
 *   createServer({ auth: { secret }, mcp: {} })            // POST/GET/DELETE http://host:port/mcp
 *   createServer({ mcp: { allowedOrigins: ['https://console.example.com'] } })
 */
import type http from 'node:http'
import { randomUUID } from 'node:crypto'
import { AccordError } from '../../src/model/errors.ts'
import type { AccordMcp } from '../../src/mcp/server.ts'
import type { McpSdk } from '../../src/mcp/sdk.ts'
import { bearerToken, type Authenticate, type Principal } from './auth.ts'
import type { Logger } from '../ops/log.ts'

export const MCP_PATH = '/mcp'

export interface McpEndpointOptions {
  /** Browser origins allowed to call /mcp (default: http(s) origins on localhost, 127.0.0.1, [::1]). */
  allowedOrigins?: string[]
  /** Open MCP sessions at once (default 1000); more are refused with 429 until one ends. */
  maxSessions?: number
  /** A session with no request and no open stream for this long is closed (default 30 min). */
  idleMs?: number
}

export interface McpEndpointDeps {
  /** This server's WebSocket address (known once it listens). */
  url: () => string
  authenticate: Authenticate
  log: Logger
  maxBodySize: number
  options: McpEndpointOptions
}

export interface McpEndpoint {
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>
  close: () => Promise<void>
}

interface Session {
  agentId: string
  /** Requests in flight, including open GET event streams. */
  active: number
  lastSeen: number
  mcp: AccordMcp
  transport: InstanceType<McpSdk['StreamableHTTPServerTransport']>
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]'])

const originAllowed = (origin: string, allowed: string[] | undefined): boolean => {
  if (allowed !== undefined) return allowed.includes(origin)
  try {
    const url = new URL(origin)
    return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK.has(url.hostname)
  } catch {
    return false
  }
}

/** A JSON-RPC error reply (MCP clients read these), with the Accord code in `data`. */
const refuse = (res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void => {
  if (res.headersSent) return
  const body = JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: `${code}: ${message}`, data: { code } }, id: null })
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body)
}

const readJson = async (req: http.IncomingMessage, limit: number): Promise<unknown> => {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new AccordError('MESSAGE_TOO_LARGE', `body larger than ${limit} bytes`)
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new AccordError('INVALID_JSON', 'the request body is not valid JSON')
  }
}

export const createMcpEndpoint = async (deps: McpEndpointDeps): Promise<McpEndpoint> => {
  // Loaded only when --mcp is on: a missing optional SDK is a typed error at startup.
  const { loadMcpSdk } = await import('../../src/mcp/sdk.ts')
  const sdk = await loadMcpSdk()
  const { createAccordMcpServer } = await import('../../src/mcp/server.ts')
  const sessions = new Map<string, Session>()
  const maxSessions = deps.options.maxSessions ?? 1000
  let closed = false
  const idleMs = deps.options.idleMs ?? 30 * 60_000
  // Clients that vanish without DELETE would otherwise keep their session and its sockets forever.
  const sweep = setInterval(() => {
    const now = Date.now()
    for (const [id, s] of sessions) {
      if (s.active > 0 || now - s.lastSeen < idleMs) continue
      sessions.delete(id)
      deps.log.info('closing idle MCP session', { agent: s.agentId })
      void s.transport.close().catch(() => {}).then(() => s.mcp.close())
    }
  }, Math.min(idleMs, 60_000))
  sweep.unref()

  const open = async (req: http.IncomingMessage, res: http.ServerResponse, principal: Principal, token: string | undefined, body: unknown): Promise<void> => {
    if (sessions.size >= maxSessions) {
      refuse(res, 429, 'LIMIT_EXCEEDED', `too many MCP sessions (limit ${maxSessions})`)
      return
    }
    const mcp = await createAccordMcpServer({ url: deps.url(), token, agentId: principal.agentId, sdk })
    const transport: Session['transport'] = new sdk.StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: id => { sessions.set(id, { agentId: principal.agentId, mcp, transport, active: 0, lastSeen: Date.now() }) }
    })
    transport.onclose = () => {
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId)
      void mcp.close()
    }
    await mcp.server.connect(transport)
    await transport.handleRequest(req, res, body)
    // An initialize the transport refused leaves no session behind.
    if (transport.sessionId === undefined || !sessions.has(transport.sessionId)) await mcp.close()
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    try {
      if (closed) throw new AccordError('CLOSED', 'the server is shutting down')
      const origin = req.headers.origin
      if (origin !== undefined && !originAllowed(origin, deps.options.allowedOrigins)) {
        deps.log.warn('rejected MCP request', { reason: 'origin not allowed', origin })
        refuse(res, 403, 'FORBIDDEN', `origin ${origin} may not use ${MCP_PATH}`)
        return
      }
      const token = bearerToken(req.headers.authorization)
      const claimed = req.headers['x-accord-agent']
      let principal: Principal
      try {
        principal = await deps.authenticate(token, typeof claimed === 'string' ? claimed : 'mcp')
      } catch (err) {
        refuse(res, 401, 'UNAUTHORIZED', (err as Error).message, { 'www-authenticate': 'Bearer' })
        return
      }
      const sessionId = req.headers['mcp-session-id']
      if (typeof sessionId === 'string') {
        const session = sessions.get(sessionId)
        if (session === undefined) {
          refuse(res, 404, 'NOT_FOUND', 'unknown or ended MCP session: initialize a new one')
          return
        }
        // A session belongs to the agent that opened it.
        if (session.agentId !== principal.agentId) {
          refuse(res, 403, 'FORBIDDEN', `the MCP session belongs to another agent than ${principal.agentId}`)
          return
        }
        session.active++
        session.lastSeen = Date.now()
        res.once('close', () => {
          session.active--
          session.lastSeen = Date.now()
        })
        await session.transport.handleRequest(req, res)
        return
      }
      if (req.method !== 'POST') {
        refuse(res, 400, 'INVALID_REQUEST', `${req.method ?? 'GET'} ${MCP_PATH} needs an Mcp-Session-Id header`)
        return
      }
      const body = await readJson(req, deps.maxBodySize)
      if (!sdk.isInitializeRequest(body)) {
        refuse(res, 400, 'INVALID_REQUEST', 'no Mcp-Session-Id header: the first request must be initialize')
        return
      }
      await open(req, res, principal, token, body)
    } catch (err) {
      const e = err as { code?: string, message?: string }
      if (res.headersSent) {
        res.end()
        return
      }
      const code = typeof e.code === 'string' ? e.code : 'INTERNAL'
      if (code === 'INTERNAL') deps.log.error('MCP request failed', { error: e.message })
      refuse(res, code === 'INTERNAL' ? 500 : 400, code, code === 'INTERNAL' ? 'internal error' : e.message ?? '')
    }
  }

  return {
    handle,
    close: async () => {
      closed = true
      clearInterval(sweep)
      const all = Array.from(sessions.values())
      sessions.clear()
      await Promise.all(all.map(async s => {
        await s.transport.close().catch(() => {})
        await s.mcp.close()
      }))
    }
  }
}
