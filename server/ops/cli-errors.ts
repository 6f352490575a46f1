/**
 * The failures of the `accord` command, each with its exit code: 2 for a wrong command line
 * (usage is printed with it), 1 for everything that went wrong while running.
 *
 *   throw new UsageError('--port must be an integer from 0 to 65535, got 99999')
 *   throw new NoDataError('./mistyped')   // "no Accord data at ./mistyped"
 */
import { AccordError } from '../../src/model/errors.ts'

/** A wrong command line: unknown option, bad value, missing argument. Exit 2. */
export class UsageError extends AccordError {
  readonly exitCode = 2
  constructor (message: string) {
    super('INVALID_REQUEST', message)
    this.name = 'UsageError'
  }
}

/** An offline command pointed at a path holding no Accord store (or backup). Exit 1. */
export class NoDataError extends AccordError {
  readonly exitCode = 1
  readonly path: string
  constructor (location: string, what = 'Accord data') {
    super('NOT_FOUND', `no ${what} at ${location}`, { path: location })
    this.name = 'NoDataError'
    this.path = location
  }
}

/** A service the command needs (server, PostgreSQL, Redis) is unreachable or refused it. Exit 1. */
export class ServiceError extends AccordError {
  readonly exitCode = 1
  constructor (message: string, options?: { cause?: unknown }) {
    super('WORKFLOW_UNAVAILABLE', message, undefined, options)
    this.name = 'ServiceError'
  }
}

/** `accord get` of a workflow the server does not have. Exit 1. */
export class UnknownWorkflowError extends AccordError {
  readonly exitCode = 1
  constructor (id: string, server: string) {
    super('NOT_FOUND', `no workflow ${id} on ${server}`, { id })
    this.name = 'UnknownWorkflowError'
  }
}
