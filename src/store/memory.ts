/**
 * An in-memory Store: the same contract as the LevelDB backend, nothing written to disk, nothing
 * encoded or compressed. For benchmarks ("Accord with persistence switched off", see
 * bench/run.ts) and tests; data lives as long as the process.
 */
import { CorruptDataError, HeadMovedError } from '../model/errors.ts'
import type { ConflictRecord, SnapshotRecord, VersionRecord, ViolationRecord } from '../model/schema.ts'
import type { Replay, Store, VersionEntry, WorkflowMeta } from './store.ts'

interface Chunk {
  from: number
  to: number
  keyframe: Uint8Array | null
  records: VersionRecord[]
  entries: VersionEntry[]
}

interface Data {
  log: Map<number, Uint8Array[]>
  ver: Map<number, VersionRecord>
  kf: Map<number, Uint8Array>
  /** Ascending by `to`. */
  arch: Chunk[]
  snap: Map<string, SnapshotRecord>
  conf: Map<number, ConflictRecord>
  viol: Map<number, ViolationRecord>
}

const ascending = (xs: Iterable<number>): number[] => Array.from(xs).sort((a, b) => a - b)

export const createMemoryStore = (): Store => {
  const metas = new Map<string, WorkflowMeta>()
  const data = new Map<string, Data>()
  const of = (id: string): Data => {
    let d = data.get(id)
    if (d === undefined) {
      d = { log: new Map(), ver: new Map(), kf: new Map(), arch: [], snap: new Map(), conf: new Map(), viol: new Map() }
      data.set(id, d)
    }
    return d
  }

  /** Newest keyframe at or before `through`. */
  const keyframeAt = (d: Data, through = Number.POSITIVE_INFINITY): Replay['keyframe'] => {
    let best = -1
    for (const v of d.kf.keys()) if (v <= through && v > best) best = v
    return best < 0 ? null : { version: best, state: d.kf.get(best) as Uint8Array }
  }

  const entries = (d: Data, after: number, through = Number.POSITIVE_INFINITY): VersionEntry[] =>
    ascending(d.log.keys()).filter(v => v > after && v <= through).map(version => ({ version, updates: d.log.get(version) as Uint8Array[] }))

  const archivedThrough = (d: Data | undefined): number => d?.arch[d.arch.length - 1]?.to ?? 0
  const chunkOf = (d: Data, version: number): Chunk | undefined => d.arch.find(c => version > c.from && version <= c.to)

  const store: Store = {
    load: async id => {
      const d = data.get(id)
      const keyframe = d === undefined ? null : keyframeAt(d)
      return { meta: metas.get(id) ?? null, keyframe, entries: d === undefined ? [] : entries(d, keyframe?.version ?? 0) }
    },
    getMeta: async id => metas.get(id) ?? null,
    heads: async ids => new Map(ids.flatMap(id => { const m = metas.get(id); return m === undefined ? [] : [[id, m.head] as const] })),
    putMeta: async meta => { metas.set(meta.id, meta) },
    commit: async (id, c) => {
      const v = c.record.version
      // The same head check as every backend (the contract): a version follows the stored head,
      // a retry of the commit that landed is a no-op, anything else lost to another writer.
      const head = metas.get(id)?.head ?? 0
      if (head !== v - 1) {
        const stored = head === v ? data.get(id)?.ver.get(v) : undefined
        if (stored !== undefined && JSON.stringify(stored) === JSON.stringify(c.record)) return
        throw new HeadMovedError(id, v - 1, head)
      }
      const d = of(id)
      d.log.set(v, c.updates)
      d.ver.set(v, c.record)
      if (c.keyframe !== undefined) d.kf.set(v, c.keyframe)
      for (const conflict of c.conflicts ?? []) d.conf.set(conflict.id, conflict)
      for (const violation of c.violations ?? []) d.viol.set(violation.id, violation)
      metas.set(id, c.meta)
    },
    replay: async (id, version) => {
      const d = data.get(id)
      if (version === 0 || d === undefined) return { keyframe: null, entries: [] }
      const chunk = chunkOf(d, version)
      if (chunk !== undefined) {
        return {
          keyframe: chunk.keyframe === null ? null : { version: chunk.from, state: chunk.keyframe },
          entries: chunk.entries.filter(e => e.version <= version)
        }
      }
      const keyframe = keyframeAt(d, version)
      return { keyframe, entries: entries(d, keyframe?.version ?? 0, version) }
    },
    version: async (id, v) => {
      const d = data.get(id)
      if (d === undefined) return null
      const hot = d.ver.get(v)
      if (hot !== undefined) return hot
      const chunk = chunkOf(d, v)
      const i = chunk?.entries.findIndex(e => e.version === v) ?? -1
      return i < 0 ? null : (chunk as Chunk).records[i] as VersionRecord
    },
    versions: async (id, { before, limit }) => {
      const d = data.get(id)
      if (d === undefined) return []
      const bound = before ?? Number.POSITIVE_INFINITY
      const hot = ascending(d.ver.keys()).filter(v => v < bound).reverse().slice(0, limit).map(v => d.ver.get(v) as VersionRecord)
      if (hot.length >= limit) return hot
      const archived: VersionRecord[] = []
      for (let i = d.arch.length - 1; i >= 0; i--) {
        const records = (d.arch[i] as Chunk).records
        for (let j = records.length - 1; j >= 0; j--) if ((records[j] as VersionRecord).version < bound) archived.push(records[j] as VersionRecord)
        if (hot.length + archived.length >= limit) break
      }
      return hot.concat(archived).slice(0, limit)
    },
    versionsAfter: async (id, after, limit) => {
      const d = data.get(id)
      if (d === undefined) return []
      const archived = d.arch.flatMap(c => c.records.filter(r => r.version > after))
      const hot = ascending(d.ver.keys()).filter(v => v > after).map(v => d.ver.get(v) as VersionRecord)
      return archived.concat(hot).slice(0, limit)
    },
    archive: async (id, from, to) => {
      const d = of(id)
      const keyframe = from === 0 ? null : d.kf.get(from) ?? null
      if (from !== 0 && keyframe === null) throw new CorruptDataError(`${id} keyframe`, `no keyframe at version ${from}`)
      const range = entries(d, from, to)
      const records = range.map(e => {
        const record = d.ver.get(e.version)
        if (record === undefined) throw new CorruptDataError(`${id} version`, `version record ${e.version} missing`)
        return record
      })
      for (const e of range) {
        d.ver.delete(e.version)
        d.log.delete(e.version)
      }
      if (from !== 0) d.kf.delete(from)
      d.arch.push({ from, to, keyframe, records, entries: range })
    },
    archivedThrough: async id => archivedThrough(data.get(id)),
    keyframes: async id => ascending(data.get(id)?.kf.keys() ?? []),
    putSnapshot: async record => { of(record.workflowId).snap.set(record.id, record) },
    getSnapshot: async (id, snapshotId) => data.get(id)?.snap.get(snapshotId) ?? null,
    listSnapshots: async id => Array.from(data.get(id)?.snap.values() ?? [])
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    deleteSnapshots: async (id, ids) => { for (const s of ids) data.get(id)?.snap.delete(s) },
    putConflict: async (record, meta) => {
      of(record.workflowId).conf.set(record.id, record)
      if (meta !== undefined) metas.set(meta.id, meta)
    },
    listConflicts: async id => ascending(data.get(id)?.conf.keys() ?? []).map(n => data.get(id)?.conf.get(n) as ConflictRecord),
    listViolations: async id => ascending(data.get(id)?.viol.keys() ?? []).map(n => data.get(id)?.viol.get(n) as ViolationRecord),
    countLog: async id => data.get(id)?.log.size ?? 0,
    listWorkflows: async () => Array.from(metas.values()).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    scan: async () => [],
    deleteWorkflow: async id => {
      metas.delete(id)
      data.delete(id)
    },
    close: async () => {}
  }
  return store
}
