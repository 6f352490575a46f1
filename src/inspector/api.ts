/**
 * The inspector's side of the HTTP API: JSON requests with the session's token, typed errors,
 * and what the token allows (read from its claims, for display only: the server decides).
 *
 *   const api = createApi(sessionStorage)
 *   const list = await api.get<WorkflowSummary[]>('/v1/workflows')
 */
import { AccordError, type AccordErrorCode } from '../model/errors.ts'

export class InspectorError extends AccordError {
  constructor (code: AccordErrorCode, message: string, details?: unknown) {
    super(code, message, details)
    this.name = 'InspectorError'
  }
}

export interface WorkflowSummary {
  workflowId: string
  version: number
  createdAt: number
  updatedAt: number
  /** The workflow and version it was forked from. */
  forkOf: { workflowId: string, version: number } | null
}

export type Right = 'read' | 'write' | 'admin'
const RANK: Record<Right, number> = { read: 1, write: 2, admin: 3 }

const TOKEN_KEY = 'accord-inspector-token'

const globToRegExp = (glob: string): RegExp =>
  new RegExp('^' + glob.split('*').map(part => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')

/** The scopes of a JWT (unverified: the server verifies); null when it cannot be read. */
const scopesOf = (token: string): string[] | null => {
  try {
    const payload = JSON.parse(atob((token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/'))) as { scopes?: unknown }
    return Array.isArray(payload.scopes) ? payload.scopes.filter((s): s is string => typeof s === 'string') : null
  } catch {
    return null
  }
}

export interface Api {
  token: () => string | null
  setToken: (token: string | null) => void
  get: <T>(path: string) => Promise<T>
  post: <T>(path: string, body?: unknown) => Promise<T>
  /** The strongest right the token names for a workflow (admin without auth). */
  rightOn: (workflowId: string) => Right | null
  /** Why an action needing `right` is disabled, or null when allowed. */
  refusal: (workflowId: string, right: Right) => string | null
  /** An SSE URL with the token as a query parameter (EventSource cannot send headers). */
  eventsUrl: (path: string) => string
}

/** One JSON request to this server with `token` (page and worker both use it); a typed error when refused. */
export const requestJson = async <T>(method: string, path: string, token: string | null, body?: unknown): Promise<T> => {
  const headers: Record<string, string> = { 'x-accord-agent': 'inspector', 'x-accord-description': encodeURIComponent('from the inspector') }
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  } catch (err) {
    throw new InspectorError('WORKFLOW_UNAVAILABLE', `the server did not answer ${method} ${path}: ${(err as Error).message}`)
  }
  if (res.status === 204) return undefined as T
  const json = await res.json().catch(() => null) as { error?: { code: AccordErrorCode, message: string, details: unknown } } | null
  if (!res.ok) {
    const e = json?.error
    throw new InspectorError(e?.code ?? 'INVALID_REQUEST', e?.message ?? `${method} ${path}: HTTP ${res.status}`, e?.details)
  }
  return json as T
}

export const createApi = (storage: Storage): Api => {
  const token = (): string | null => storage.getItem(TOKEN_KEY)
  const request = <T>(method: string, path: string, body?: unknown): Promise<T> => requestJson<T>(method, path, token(), body)
  const rightOn = (workflowId: string): Right | null => {
    const t = token()
    if (t === null) return 'admin'
    const scopes = scopesOf(t) ?? []
    let best: Right | null = null
    for (const scope of scopes) {
      const [right, pattern] = scope.split(':') as [Right, string | undefined]
      if (RANK[right] === undefined || pattern === undefined || !globToRegExp(pattern).test(workflowId)) continue
      if (best === null || RANK[right] > RANK[best]) best = right
    }
    return best
  }
  return {
    token,
    setToken: t => { t === null ? storage.removeItem(TOKEN_KEY) : storage.setItem(TOKEN_KEY, t) },
    get: path => request('GET', path),
    post: (path, body) => request('POST', path, body ?? {}),
    rightOn,
    refusal: (workflowId, right) => {
      const held = rightOn(workflowId)
      if (held !== null && RANK[held] >= RANK[right]) return null
      return `needs the ${right} right on ${workflowId}; this token has ${held ?? 'no'} right there`
    },
    eventsUrl: path => {
      const t = token()
      return t === null ? path : `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(t)}`
    }
  }
}
