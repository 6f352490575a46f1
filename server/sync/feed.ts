/**
 * Change records as they are persisted, to subscribers (SDK over the extension protocol, later
 * SSE). A subscriber that passes the last version it saw first receives every record it missed
 * from the store, then live ones, in order and exactly once: live records that arrive while the
 * missed ones are read are buffered, and every delivery is deduplicated by version.
 */
import type { VersionRecord, JsonPatchOp } from '../../src/model/schema.ts'
import type { Store } from '../../src/store/store.ts'

export type RecordListener = (record: VersionRecord) => void

export interface SubscribeOptions {
  /** JSON pointer: only changes at, above or below this path are delivered. */
  path?: string
  /** Deliver every record with a version greater than this first (gap recovery). */
  after?: number
}

export interface ChangeFeed {
  publish: (record: VersionRecord) => void
  subscribe: (workflowId: string, options: SubscribeOptions, listener: RecordListener) => Promise<() => void>
  /** Number of live subscriptions (tests, metrics). */
  size: () => number
  /** Whether anyone here subscribes to this workflow's records (else a remote version need not be decoded for it). */
  watching: (workflowId: string) => boolean
}

const related = (a: string, b: string): boolean =>
  a === b || a.startsWith(b + '/') || b.startsWith(a + '/') || a === '' || b === ''

/** The record with only the ops touching `path`, or null when none does. */
export const filterRecord = (record: VersionRecord, path: string | undefined): VersionRecord | null => {
  if (path === undefined || path === '') return record
  const changes = record.changes.filter((op: JsonPatchOp) => related(op.path, path) || (op.from !== undefined && related(op.from, path)))
  return changes.length === 0 ? null : { ...record, changes }
}

const PAGE = 500

export interface ChangeFeedOptions {
  /** A workflow got its first subscriber here; returns what to run when its last one leaves (cluster: receive its versions). */
  onWatched?: (workflowId: string) => () => void
}

export const createChangeFeed = (store: Store, feedOptions: ChangeFeedOptions = {}): ChangeFeed => {
  const listeners = new Map<string, Set<RecordListener>>()
  const unwatch = new Map<string, () => void>()

  const publish = (record: VersionRecord): void => {
    for (const listener of listeners.get(record.workflowId) ?? []) listener(record)
  }

  const subscribe = async (workflowId: string, options: SubscribeOptions, listener: RecordListener): Promise<() => void> => {
    let last = options.after ?? -1
    let buffer: VersionRecord[] | null = options.after === undefined ? null : []
    const deliver = (record: VersionRecord): void => {
      if (record.version <= last) return
      last = record.version
      const filtered = filterRecord(record, options.path)
      if (filtered !== null) listener(filtered)
    }
    const live: RecordListener = record => {
      if (buffer !== null) buffer.push(record)
      else deliver(record)
    }
    let set = listeners.get(workflowId)
    if (set === undefined) {
      listeners.set(workflowId, set = new Set())
      if (feedOptions.onWatched !== undefined) unwatch.set(workflowId, feedOptions.onWatched(workflowId))
    }
    set.add(live)
    const unsubscribe = (): void => {
      const s = listeners.get(workflowId)
      s?.delete(live)
      if (s?.size === 0) {
        listeners.delete(workflowId)
        unwatch.get(workflowId)?.()
        unwatch.delete(workflowId)
      }
    }
    if (buffer !== null) {
      try {
        for (;;) {
          const page = await store.versionsAfter(workflowId, last, PAGE)
          for (const record of page) deliver(record)
          if (page.length < PAGE) break
        }
      } catch (err) {
        unsubscribe()
        throw err
      }
      const missedLive = buffer
      buffer = null
      for (const record of missedLive) deliver(record)
    }
    return unsubscribe
  }

  return { publish, subscribe, size: () => Array.from(listeners.values()).reduce((n, s) => n + s.size, 0), watching: id => listeners.has(id) }
}
