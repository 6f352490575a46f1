/**
 * Signed tokens (JWT via jose) naming the agent and its per-workflow scopes.
 *
 * Claims: `sub` = agent id (the author recorded in change records), `scopes` = strings
 *   <right>:<workflow pattern>[:<path pattern>]
 * right: read | write | admin (admin implies write implies read); `*` in the workflow pattern
 * matches any run of characters; a path pattern (JSON pointer, `*` = one segment, `**` = any
 * number) limits writes to those paths, e.g. `read:*`, `write:team-*`, `write:wf-1:/tasks/**`.
 */
import { SignJWT, errors as joseErrors, importSPKI, jwtVerify, type JWTPayload } from 'jose'
import { z } from 'zod'
import { AccordError } from '../../src/model/errors.ts'

export type Right = 'read' | 'write' | 'admin'
const RANK: Record<Right, number> = { read: 1, write: 2, admin: 3 }

export interface AuthOptions {
  /** HS256 shared secret. */
  secret?: string
  /** PEM (SPKI) public key for RS256 / ES256 / EdDSA tokens. */
  publicKey?: string
  /** Algorithms accepted with publicKey (default RS256, ES256, EdDSA). */
  algorithms?: string[]
  issuer?: string
  audience?: string
}

export class UnauthorizedError extends AccordError {
  constructor (message: string) {
    super('UNAUTHORIZED', message)
    this.name = 'UnauthorizedError'
  }
}

export class ForbiddenError extends AccordError {
  constructor (message: string, details?: unknown) {
    super('FORBIDDEN', message, details)
    this.name = 'ForbiddenError'
  }
}

interface Grant {
  right: Right
  workflow: RegExp
  paths: string[] | null
}

export interface Principal {
  agentId: string
  /** Whether this principal holds `right` on the workflow. */
  can: (workflowId: string, right: Right) => boolean
  /** Paths writes are limited to, or null when unrestricted. */
  writePaths: (workflowId: string) => string[] | null
}

const ClaimsSchema = z.object({ sub: z.string().min(1).max(200), scopes: z.array(z.string()).max(1000) })

const globToRegExp = (glob: string): RegExp =>
  new RegExp('^' + glob.split('*').map(part => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$')

export const parseScope = (scope: string): Grant => {
  const [right, workflow, ...rest] = scope.split(':')
  if (right !== 'read' && right !== 'write' && right !== 'admin') throw new UnauthorizedError(`invalid scope ${scope}`)
  if (workflow === undefined || workflow === '') throw new UnauthorizedError(`invalid scope ${scope}: no workflow pattern`)
  const path = rest.join(':')
  return { right, workflow: globToRegExp(workflow), paths: path === '' ? null : [path] }
}

/** The token of an `Authorization: Bearer <token>` header, or undefined without one. */
export const bearerToken = (header: string | undefined): string | undefined =>
  header?.startsWith('Bearer ') === true ? header.slice(7).trim() : undefined

/** The principal of a request: from its token when auth is on, else anyone (named by `claimed`). */
export type Authenticate = (token: string | null | undefined, claimed: string | null) => Promise<Principal>

/** A URL (or path + query) with the value of any `token` query parameter replaced, for logs. */
export const redactToken = (url: string): string => url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]')

/** Anyone, when auth is not configured. */
export const ANONYMOUS = (agentId: string): Principal => ({ agentId, can: () => true, writePaths: () => null })

export const principalFromClaims = (claims: JWTPayload): Principal => {
  const parsed = ClaimsSchema.safeParse(claims)
  if (!parsed.success) throw new UnauthorizedError('token lacks sub or scopes')
  const grants = parsed.data.scopes.map(parseScope)
  const matching = (id: string): Grant[] => grants.filter(g => g.workflow.test(id))
  return {
    agentId: parsed.data.sub,
    can: (id, right) => matching(id).some(g => RANK[g.right] >= RANK[right]),
    writePaths: id => {
      const writers = matching(id).filter(g => RANK[g.right] >= RANK.write)
      if (writers.length === 0 || writers.some(g => g.paths === null)) return null
      return writers.flatMap(g => g.paths ?? [])
    }
  }
}

const splitPointer = (pointer: string): string[] => pointer === '' ? [] : pointer.slice(1).split('/')

/** Whether JSON pointer `path` lies within `pattern` (`*` one segment, `**` any number). */
export const pathMatches = (pattern: string, path: string): boolean => {
  const p = splitPointer(pattern)
  const s = splitPointer(path)
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === s.length
    if (p[i] === '**') return match(i + 1, j) || (j < s.length && match(i, j + 1))
    if (j === s.length) return false
    return (p[i] === '*' || p[i] === s[j]) && match(i + 1, j + 1)
  }
  return match(0, 0)
}

export interface Verifier {
  verify: (token: string | null | undefined) => Promise<Principal>
}

export const createVerifier = async (options: AuthOptions): Promise<Verifier> => {
  let key: Uint8Array | CryptoKey
  let algorithms: string[]
  if (options.secret !== undefined) {
    key = new TextEncoder().encode(options.secret)
    algorithms = ['HS256']
  } else if (options.publicKey !== undefined) {
    algorithms = options.algorithms ?? ['RS256', 'ES256', 'EdDSA']
    key = await importSPKI(options.publicKey, algorithms[0] as string)
  } else {
    throw new AccordError('INVALID_REQUEST', 'auth needs a secret or a publicKey')
  }
  return {
    async verify (token) {
      if (token === null || token === undefined || token === '') throw new UnauthorizedError('a token is required')
      try {
        const { payload } = await jwtVerify(token, key, { algorithms, issuer: options.issuer, audience: options.audience })
        return principalFromClaims(payload)
      } catch (err) {
        if (err instanceof UnauthorizedError) throw err
        if (err instanceof joseErrors.JWTExpired) throw new UnauthorizedError('token expired')
        if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw new UnauthorizedError('token signature invalid')
        throw new UnauthorizedError(`token rejected: ${(err as Error).message}`)
      }
    }
  }
}

/** Checks tokens with `verifier` (auth on), or lets anyone in under the name it claims (auth off). */
export const authenticator = (verifier: Verifier | null): Authenticate => async (token, claimed) => {
  if (verifier !== null) return verifier.verify(token)
  return ANONYMOUS((claimed ?? '').slice(0, 200) || 'anonymous')
}

/** Mints an HS256 token (development and tests: `accord token`). */
export const mintToken = async (options: { secret: string, agentId: string, scopes: string[], expiresIn?: string, issuer?: string, audience?: string }): Promise<string> => {
  for (const scope of options.scopes) parseScope(scope)
  let jwt = new SignJWT({ scopes: options.scopes })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(options.agentId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '1h')
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer)
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience)
  return jwt.sign(new TextEncoder().encode(options.secret))
}
