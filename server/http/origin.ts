/**
 * DNS-rebinding and cross-site protection of a server without auth. Such a server trusts every
 * local client, so a web page whose name resolves to 127.0.0.1 (`evil.example` -> 127.0.0.1)
 * must not reach it: requests whose `Host` is not a loopback name or address are refused, and
 * so are browser requests (WebSocket upgrades included) whose `Origin` is not loopback and not
 * listed in `allowedOrigins` (`accord serve --allow-origin https://app.example`).
 *
 *   const guard = createOriginGuard({ allowedOrigins: ['https://app.example'] })
 *   const refusal = guard(req) // null, or why the request is refused (answer 403 / close 4403)
 *
 * With auth configured tokens protect every request, and the server does not use this guard.
 */
import type http from 'node:http'
import { AccordError } from '../../src/model/errors.ts'

export interface OriginGuardOptions {
  /** Browser origins (scheme://host[:port]) allowed besides loopback ones; `null` for opaque origins. */
  allowedOrigins?: string[]
}

/** Returns why the request is refused, or null to let it through. */
export type OriginGuard = (req: http.IncomingMessage) => string | null

/** localhost, *.localhost (RFC 6761: browsers resolve it to loopback themselves), 127/8 and ::1. */
export const isLoopbackHost = (hostname: string): boolean => {
  const name = hostname.toLowerCase().replace(/\.$/, '')
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  if (name === '[::1]' || name === '::1') return true
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

/** The host name of a Host header (`name:port`, `[v6]:port`), or null when malformed. */
const hostnameOf = (header: string): string | null => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header.trim())
  return m === null ? null : (m[1] as string)
}

/** An origin in the form browsers send it: scheme://host[:port], lower case, no default port. */
export const normalizeOrigin = (origin: string): string => {
  if (origin === 'null') return 'null'
  try {
    return new URL(origin).origin.toLowerCase()
  } catch {
    throw new AccordError('INVALID_REQUEST', `invalid allowed origin ${JSON.stringify(origin)}: expected scheme://host[:port], e.g. https://app.example`)
  }
}

export const createOriginGuard = (options: OriginGuardOptions = {}): OriginGuard => {
  const allowed = new Set((options.allowedOrigins ?? []).map(normalizeOrigin))
  return req => {
    const host = req.headers.host
    if (host === undefined) return 'a Host header is required'
    const hostname = hostnameOf(host)
    if (hostname === null || !isLoopbackHost(hostname)) {
      return `Host ${host.slice(0, 100)} is not a loopback name: without auth this server only answers requests to localhost, 127.0.0.1 or [::1] (DNS rebinding protection)`
    }
    const origin = req.headers.origin
    if (origin === undefined) return null
    if (allowed.has(origin.toLowerCase())) return null
    let originHost: string | null = null
    try {
      const url = new URL(origin)
      if (url.protocol === 'http:' || url.protocol === 'https:') originHost = url.hostname
    } catch {}
    if (originHost !== null && isLoopbackHost(originHost)) return null
    return `Origin ${origin.slice(0, 100)} is not allowed: without auth only loopback pages may connect; list others with --allow-origin (allowedOrigins)`
  }
}
