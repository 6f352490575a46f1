/**
 * What each transaction on a workflow's document changed, as the version record names it: the
 * state's RFC 6902 ops, the runtime's ops (agents, tasks, session, events; prefixed with their
 * section) and the concurrent writes detected. Collected by the doc's observers, which Yjs runs
 * before the transaction's 'update' event, and taken by that event's handler.
 *
 *   const changes = new TransactionChanges(doc)     // before doc.on('update', ...)
 *   doc.on('update', update => { const { ops, runtimeOps, conflicts } = changes.take() })
 */
import type * as Y from 'yjs'
import type { Operation } from 'fast-json-patch'
import { eventsToOps } from '../../src/model/changes.ts'
import { stateRoot } from '../../src/model/json-yjs.ts'
import { EVENTS_ROOT, RUNTIME_ROOTS } from '../../src/model/runtime.ts'
import { detectConflicts, type DetectedConflict } from '../history/conflicts.ts'

const prefixOps = (section: string, ops: Operation[]): Operation[] =>
  ops.map(op => ({ ...op, path: `/${section}${op.path}`, ...('from' in op ? { from: `/${section}${op.from}` } : {}) }) as Operation)

export interface Changes {
  ops: Operation[]
  runtimeOps: Operation[]
  conflicts: DetectedConflict[]
}

export class TransactionChanges {
  private readonly doc: Y.Doc
  private ops: Operation[] = []
  private runtimeOps: Operation[] = []
  private conflicts: DetectedConflict[] = []

  constructor (doc: Y.Doc) {
    this.doc = doc
    stateRoot(doc).observeDeep(events => { this.ops = this.ops.concat(eventsToOps(events)) })
    for (const [section, name] of Object.entries(RUNTIME_ROOTS)) {
      doc.getMap(name).observeDeep(events => { this.runtimeOps = this.runtimeOps.concat(prefixOps(section, eventsToOps(events))) })
    }
    doc.getArray(EVENTS_ROOT).observe(event => { this.runtimeOps = this.runtimeOps.concat(prefixOps('events', eventsToOps([event]))) })
    doc.on('beforeObserverCalls', this.onBeforeObservers)
  }

  private readonly onBeforeObservers = (tr: Y.Transaction): void => {
    const found = detectConflicts(this.doc, stateRoot(this.doc), tr)
    if (found.length > 0) this.conflicts = this.conflicts.concat(found)
  }

  /** What the transaction that just ended changed (and starts collecting the next one). */
  take (): Changes {
    const changes = { ops: this.ops, runtimeOps: this.runtimeOps, conflicts: this.conflicts }
    this.ops = []
    this.runtimeOps = []
    this.conflicts = []
    return changes
  }

  /** Stops detecting conflicts (the observers go with the doc). */
  destroy (): void {
    this.doc.off('beforeObserverCalls', this.onBeforeObservers)
  }
}
