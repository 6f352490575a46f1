/**
 * Errors are values with names: every failure Accord reports is an `AccordError` subclass with a
 * stable `code`, so callers branch on `err.code` instead of parsing messages.
 */

export type AccordErrorCode =
  | 'INVALID_JSON'
  | 'INVALID_PATCH'
  | 'SCHEMA_VIOLATION'
  | 'INVALID_WORKFLOW_ID'
  | 'INVALID_MESSAGE'
  | 'MESSAGE_TOO_LARGE'
  | 'STORAGE_FAILURE'
  | 'CORRUPT_DATA'
  | 'QUOTA_EXCEEDED'
  | 'NOT_FOUND'
  | 'INVALID_REQUEST'
  | 'INVALID_TRANSITION'
  | 'PAUSED'
  | 'NOT_TASK_OWNER'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'PRECONDITION_FAILED'
  | 'CONFLICT'
  | 'WORKFLOW_UNAVAILABLE'
  | 'CLOSED'
  | 'TIMEOUT'
  | 'HEAD_MOVED'
  | 'LIMIT_EXCEEDED'
  | 'NOT_SUPPORTED'
  | 'MISSING_DEPENDENCY'

export class AccordError extends Error {
  readonly code: AccordErrorCode
  readonly details: unknown

  constructor (code: AccordErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AccordError'
    this.code = code
    this.details = details
  }
}

/** A value that is not plain JSON (function, undefined in an array, NaN, cycle, class instance). */
export class InvalidJsonError extends AccordError {
  readonly path: string
  constructor (path: string, reason: string) {
    super('INVALID_JSON', `not a JSON value at ${path === '' ? '/' : path}: ${reason}`, { path, reason })
    this.name = 'InvalidJsonError'
    this.path = path
  }
}

/** An RFC 6902 patch that is malformed or does not apply to the current state. */
export class InvalidPatchError extends AccordError {
  constructor (message: string, details?: unknown, options?: { cause?: unknown }) {
    super('INVALID_PATCH', message, details, options)
    this.name = 'InvalidPatchError'
  }
}

export interface SchemaIssue {
  path: Array<string | number>
  message: string
  code: string
}

/** A change refused because the result would violate the workflow's zod schema. */
export class SchemaViolationError extends AccordError {
  readonly issues: SchemaIssue[]
  constructor (issues: SchemaIssue[]) {
    const first = issues[0]
    const where = first === undefined ? '' : ` at /${first.path.join('/')}: ${first.message}`
    super('SCHEMA_VIOLATION', `change violates the workflow schema${where}`, { issues })
    this.name = 'SchemaViolationError'
    this.issues = issues
  }
}

export class InvalidWorkflowIdError extends AccordError {
  constructor (id: string) {
    super('INVALID_WORKFLOW_ID', `invalid workflow id ${JSON.stringify(id.slice(0, 200))}: ` +
      'use 1-128 characters from A-Z a-z 0-9 . _ - : starting with a letter or digit', { id })
    this.name = 'InvalidWorkflowIdError'
  }
}

export class StorageError extends AccordError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('STORAGE_FAILURE', message, undefined, options)
    this.name = 'StorageError'
  }
}

/** Operation on a handle, server or store that was already closed. */
export class ClosedError extends AccordError {
  constructor (what: string) {
    super('CLOSED', `${what} is closed`)
    this.name = 'ClosedError'
  }
}

export class TimeoutError extends AccordError {
  constructor (what: string, ms: number) {
    super('TIMEOUT', `${what} did not happen within ${ms} ms`, { ms })
    this.name = 'TimeoutError'
  }
}

/** A stored value whose checksum does not match: the data on disk was damaged. */
export class CorruptDataError extends AccordError {
  constructor (key: string, reason: string) {
    super('CORRUPT_DATA', `corrupt record ${key}: ${reason}`, { key, reason })
    this.name = 'CorruptDataError'
  }
}

/** A configured cap was hit (workflows in memory, connections per workflow, update rate). */
export class LimitExceededError extends AccordError {
  readonly limit: string
  constructor (limit: string, message: string) {
    super('LIMIT_EXCEEDED', message, { limit })
    this.name = 'LimitExceededError'
    this.limit = limit
  }
}

/**
 * A commit of version v found the stored head is not v - 1: another writer (another server on the
 * same database) stored a version of this workflow first. Nothing was written; reload and retry.
 */
export class HeadMovedError extends AccordError {
  readonly workflowId: string
  readonly expected: number
  readonly actual: number
  constructor (workflowId: string, expected: number, actual: number) {
    super('HEAD_MOVED', `workflow ${workflowId} is at version ${actual}, not ${expected}: another writer stored a version first`,
      { workflowId, expected, actual })
    this.name = 'HeadMovedError'
    this.workflowId = workflowId
    this.expected = expected
    this.actual = actual
  }
}

/**
 * An optional engine's package is not installed (pg for PostgreSQL, ioredis for the Redis bus):
 * they are optional peer dependencies, loaded only when a store URL or cluster option asks for them.
 */
export class MissingDependencyError extends AccordError {
  readonly packageName: string
  constructor (packageName: string, feature: string, options?: { cause?: unknown }) {
    super('MISSING_DEPENDENCY', `${feature} needs the "${packageName}" package: npm install ${packageName}`, { packageName }, options)
    this.name = 'MissingDependencyError'
    this.packageName = packageName
  }
}

/** A protocol message (WebSocket frame, bus message) that does not decode or breaks the protocol. */
export class InvalidMessageError extends AccordError {
  constructor (message: string, details?: unknown) {
    super('INVALID_MESSAGE', message, details)
    this.name = 'InvalidMessageError'
  }
}
