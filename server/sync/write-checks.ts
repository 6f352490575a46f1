/**
 * The checks a peer's write goes through once applied: a write made while the workflow is paused
 * is recorded, a write outside the peer's paths is reverted, and a write that leaves the state
 * failing the workflow's schema is reverted to the last valid state (or, without one, recorded).
 * A Yjs update cannot be dropped (later updates depend on it), so reverting means a compensating
 * change, which the workflow applies and glues to the write's pending entry.
 *
 *   const checks = new WriteChecks(id, doc, schemaFor)
 *   const before = checks.before(peer)          // what a path-limited peer's write is compared with
 *   const entry = ...apply the update...
 *   const fix = checks.check(peer, entry, before)  // violations are pushed onto entry
 *   if (fix !== null) compensate(entry, fix.target, fix.description)
 */
import type * as Y from 'yjs'
import type { ZodType } from 'zod'
import { readState } from '../../src/model/json-yjs.ts'
import { toPointer, type JsonObject } from '../../src/model/json.ts'
import { isPaused } from '../../src/model/runtime.ts'
import { pathMatches } from '../http/auth.ts'
import type { Peer } from './contracts.ts'
import type { Pending } from './version-cut.ts'

/** What a refused write is reverted to, and the description of the reverting change. */
export interface Compensation {
  target: JsonObject
  description: string
}

export class WriteChecks {
  private readonly id: string
  private readonly doc: Y.Doc
  private readonly schemaFor: ((workflowId: string) => ZodType | undefined) | undefined
  /** The last state that passed the schema: what a compensation restores (null: no schema). */
  private lastValid: JsonObject | null

  constructor (id: string, doc: Y.Doc, schemaFor?: (workflowId: string) => ZodType | undefined) {
    this.id = id
    this.doc = doc
    this.schemaFor = schemaFor
    // Kept only where it is used: a JSON copy of the state costs more heap than the state itself.
    this.lastValid = schemaFor?.(id) === undefined ? null : readState(doc)
  }

  /** The last valid state, if a schema is checked (shared, never mutated). */
  get baseline (): JsonObject | null { return this.lastValid }

  /** The state a path-limited peer's next write is checked against (undefined: unrestricted). */
  before (peer: Peer): JsonObject | undefined {
    return peer.writePaths === null ? undefined : readState(this.doc)
  }

  /**
   * Checks the write that became `entry` (its ops are non-empty), pushing a violation for each
   * broken rule; returns what to revert to, or null when the write stays.
   */
  check (peer: Peer, entry: Pending, before: JsonObject | undefined): Compensation | null {
    const now = Date.now()
    const paths = Array.from(new Set(entry.ops.map(op => op.path)))
    if (isPaused(this.doc)) entry.violations.push({ kind: 'paused', agent: peer.agentId, paths, reverted: false, at: now })
    if (peer.writePaths !== null && before !== undefined) {
      const allowed = peer.writePaths
      const outside = paths.filter(path => !allowed.some(pattern => pathMatches(pattern, path)))
      if (outside.length > 0) {
        entry.violations.push({ kind: 'scope', agent: peer.agentId, paths: outside, reverted: true, at: now })
        return { target: before, description: `reverted a change by ${peer.agentId} outside its paths` }
      }
    }
    const schema = this.schemaFor?.(this.id)
    if (schema === undefined) return null
    const state = readState(this.doc)
    const result = schema.safeParse(state)
    if (result.success) {
      this.lastValid = state
      return null
    }
    const issues = result.error.issues.map(i => ({ ...i, path: i.path.map(p => typeof p === 'symbol' ? String(p) : p) }))
    // Without a baseline to restore (the schema arrived without one) the write stays, reported.
    entry.violations.push({ kind: 'schema', agent: peer.agentId, paths: issues.map(i => toPointer(i.path)), issues, reverted: this.lastValid !== null, at: now })
    if (this.lastValid === null) return null
    return { target: this.lastValid, description: `reverted an invalid change by ${peer.agentId}` }
  }

  /** Takes the current state as the known-good one (a schema was just registered). */
  reset (): void {
    this.lastValid = readState(this.doc)
  }
}
