/**
 * The embedded default backend: LevelDB via `level`. Only this file touches the database.
 * Key layout: keys.ts. Values: framed with checksums (frame.ts), encoded by codec.ts.
 * Why one file of ~440 lines: it is the Store interface implemented once, method by method, and
 * "only this file touches the database" is the property worth keeping.
 */
import { Level } from 'level'
import { CorruptDataError, HeadMovedError, StorageError } from '../model/errors.ts'
import { ConflictRecordSchema, SnapshotRecordSchema, VersionRecordSchema, ViolationRecordSchema, type VersionRecord } from '../model/schema.ts'
import { compress, decodeChunk, decodeUpdates, decompress, encodeChunk, encodeUpdates, type Chunk, type EncodedEntry } from './codec.ts'
import { checkFrame, createFramer, isEncrypted, type Framer } from './frame.ts'
import { archivedRecordsAfter, archivedRecordsThrough, parseArchivedRecord, recordParser, recordText, wrapStorage as wrap } from './records.ts'
import * as keys from './keys.ts'
import { describeOpenError } from './open-errors.ts'
import { WorkflowMetaSchema, type Keyframe, type Replay, type Store, type VersionEntry, type WorkflowMeta } from './store.ts'

type Db = Level<string, Uint8Array>
type BatchOp = { type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }

/** Outside every workflow's keys: a value only the right encryption key opens. */
export const KEYCHECK_KEY = '_!keycheck'

const putOp = (key: string, value: Uint8Array): BatchOp => ({ type: 'put', key, value })

export interface LevelStoreOptions {
  /**
   * fsync every write batch (LevelDB `sync: true`): survives power loss and OS crashes, not only
   * a killed process, at the cost of one fsync per group commit. Default false.
   */
  sync?: boolean
  /** AES-256-GCM key (32 bytes): values are encrypted at rest (see frame.ts). */
  encryptionKey?: Uint8Array
  /** Refuse to create a store: offline tools (verify, rekey) must never make an empty one. */
  mustExist?: boolean
}

export const openLevelStore = async (location: string, options: LevelStoreOptions = {}): Promise<Store> => {
  // No `sync` option unless it is on: abstract-level copies the options into every operation of
  // a batch, and with `sync: false` there a batch cost about three times the main-thread time.
  const writeOptions: { sync?: boolean } = options.sync === true ? { sync: true } : {}
  const framer = createFramer(options.encryptionKey)
  const { frame, unframe, frameJson } = framer
  const parse = recordParser(framer)
  const db: Db = new Level<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open({ createIfMissing: options.mustExist !== true }).catch(async (err: unknown) => { throw await describeOpenError(location, err) })
  await checkKey(db, location, options.encryptionKey === undefined ? null : framer).catch(async err => {
    await db.close()
    throw err
  })

  const getMeta = (id: string): Promise<WorkflowMeta | null> => wrap(`reading meta of ${id}`, async () => {
    const k = keys.metaKey(id)
    const value = await db.get(k)
    return value === undefined ? null : parse(WorkflowMetaSchema, k, value)
  })

  const storedHeads: NonNullable<Store['heads']> = ids => wrap(`reading the heads of ${ids.length} workflows`, async () => {
    const metaKeys = ids.map(keys.metaKey)
    const values = await db.getMany(metaKeys)
    const out = new Map<string, number>()
    values.forEach((value, i) => { if (value !== undefined) out.set(ids[i] as string, parse(WorkflowMetaSchema, metaKeys[i] as string, value).head) })
    return out
  })

  const readKeyframe = async (id: string, atOrBefore?: number): Promise<Keyframe | null> => {
    for await (const [k, v] of db.iterator({ ...keys.kindRange(id, 'kf', { through: atOrBefore }), reverse: true, limit: 1 })) {
      return { version: keys.keyToNum(k), state: decompressOrCorrupt(k, unframe(k, v)) }
    }
    return null
  }

  const decompressOrCorrupt = (k: string, data: Uint8Array): Uint8Array => {
    try {
      return decompress(data)
    } catch {
      throw new CorruptDataError(k, 'cannot decompress')
    }
  }

  const readEntries = async (id: string, after: number, through?: number): Promise<VersionEntry[]> => {
    const out: VersionEntry[] = []
    for await (const [k, v] of db.iterator(keys.kindRange(id, 'log', { after, through }))) {
      out.push({ version: keys.keyToNum(k), updates: decodeUpdates(unframe(k, v)) })
    }
    return out
  }

  /** The archive chunk holding `version`, or null. */
  const readChunk = async (id: string, version: number): Promise<Chunk | null> => {
    for await (const [k, v] of db.iterator({ ...keys.kindRange(id, 'arch', { after: version - 1 }), limit: 1 })) {
      try {
        return decodeChunk(unframe(k, v))
      } catch (err) {
        if (err instanceof CorruptDataError) throw err
        throw new CorruptDataError(k, 'cannot decode archive chunk')
      }
    }
    return null
  }

  const load = (id: string): Promise<{ meta: WorkflowMeta | null } & Replay> => wrap(`loading ${id}`, async () => {
    const meta = await getMeta(id)
    // The meta names the newest keyframe: one get instead of a reverse seek, which has to step
    // over the deletion markers archiving leaves behind.
    let keyframe: Keyframe | null = null
    if (meta?.keyframe !== undefined) {
      const k = keys.key(id, 'kf', meta.keyframe)
      const v = await db.get(k)
      if (v !== undefined) keyframe = { version: meta.keyframe, state: decompressOrCorrupt(k, unframe(k, v)) }
    }
    if (keyframe !== null && meta !== null) {
      const from = keyframe.version
      const entries = await readEntries(id, from)
      // Only when the log runs on from it to the head; anything else takes the general path.
      if (entries.length === meta.head - from && entries.every((e, i) => e.version === from + i + 1)) return { meta, keyframe, entries }
    }
    keyframe = await readKeyframe(id)
    const entries = await readEntries(id, keyframe?.version ?? 0)
    return { meta, keyframe, entries }
  })

  /**
   * Stored heads of recently written workflows. This process holds LevelDB's lock, so it is the
   * only writer: the head check needs no read per commit (that read was a fifth of the write
   * path's CPU). Bounded, so it does not grow with every workflow ever written.
   */
  const heads = new Map<string, number>()
  const rememberHead = (id: string, head: number): void => {
    heads.delete(id)
    heads.set(id, head)
    if (heads.size > 4096) heads.delete(heads.keys().next().value as string)
  }

  const putMeta = (meta: WorkflowMeta): Promise<void> =>
    wrap(`writing meta of ${meta.id}`, async () => {
      await db.put(keys.metaKey(meta.id), frameJson(meta), writeOptions)
      rememberHead(meta.id, meta.head)
    })

  /**
   * Commits queued in one turn of the event loop, from any workflow, go to LevelDB as one batch:
   * one native call and one thread-pool job per turn instead of per commit. Under load that call
   * was a quarter of the main thread's busy time. Each commit still lands atomically (it is part
   * of one atomic batch). If the combined batch fails, each commit is written on its own, so one
   * bad commit fails only itself; a full disk fails them all, each of which then retries.
   */
  interface Queued { ops: BatchOp[], resolve: () => void, reject: (err: unknown) => void }
  let combined: Queued[] | null = null
  let writing: Promise<void> = Promise.resolve()
  const writeAlone = (q: Queued): Promise<void> => db.batch(q.ops, writeOptions).then(q.resolve, q.reject)
  const writeQueued = async (queued: Queued[]): Promise<void> => {
    if (queued.length === 1) return writeAlone(queued[0] as Queued)
    try {
      await db.batch(queued.flatMap(q => q.ops), writeOptions)
    } catch {
      await Promise.all(queued.map(writeAlone))
      return
    }
    for (const q of queued) q.resolve()
  }
  const writeCombined = (ops: BatchOp[]): Promise<void> => new Promise((resolve, reject) => {
    if (combined === null) {
      const queued: Queued[] = []
      combined = queued
      setImmediate(() => {
        combined = null
        writing = writeQueued(queued)
      })
    }
    combined.push({ ops, resolve, reject })
  })

  /** Commits of one workflow run one at a time, so the head check and the batch are atomic. */
  const committing = new Map<string, Promise<unknown>>()
  const commit: Store['commit'] = (id, c) => {
    const run = (committing.get(id) ?? Promise.resolve()).then(() => commitNow(id, c))
    const tail = run.catch(() => {})
    committing.set(id, tail)
    void tail.then(() => { if (committing.get(id) === tail) committing.delete(id) })
    return run
  }

  const commitNow: Store['commit'] = (id, c) => wrap(`committing version ${c.record.version} of ${id}`, async () => {
    const v = c.record.version
    const head = heads.get(id) ?? (await getMeta(id))?.head ?? 0
    if (head !== v - 1) {
      // A retry of a commit that did land is a no-op; anything else means another writer won.
      const stored = head === v ? await db.get(keys.key(id, 'ver', v)) : undefined
      if (stored !== undefined && JSON.stringify(framer.unframeJson(keys.key(id, 'ver', v), stored)) === JSON.stringify(c.record)) return
      throw new HeadMovedError(id, v - 1, head)
    }
    const ops: BatchOp[] = [
      putOp(keys.key(id, 'log', v), frame(encodeUpdates(c.updates))),
      putOp(keys.key(id, 'ver', v), frameJson(c.record))
    ]
    if (c.keyframe !== undefined) ops.push(putOp(keys.key(id, 'kf', v), frame(await compress(c.keyframe))))
    for (const conflict of c.conflicts ?? []) ops.push(putOp(keys.key(id, 'conf', conflict.id), frameJson(conflict)))
    for (const violation of c.violations ?? []) ops.push(putOp(keys.key(id, 'viol', violation.id), frameJson(violation)))
    ops.push(putOp(keys.metaKey(id), frameJson(c.meta)))
    try {
      await writeCombined(ops)
    } catch (err) {
      heads.delete(id) // unknown whether it landed: read it next time
      throw err
    }
    rememberHead(id, c.meta.head)
  })

  const replay: Store['replay'] = (id, version) => wrap(`reading version ${version} of ${id}`, async () => {
    if (version === 0) return { keyframe: null, entries: [] }
    if (version <= await archivedThrough(id)) {
      const chunk = await readChunk(id, version)
      if (chunk === null) throw new CorruptDataError(keys.key(id, 'arch', version), 'archive chunk missing')
      return {
        keyframe: chunk.keyframe === null ? null : { version: chunk.from, state: chunk.keyframe },
        entries: chunk.entries.filter(e => e.version <= version)
      }
    }
    const keyframe = await readKeyframe(id, version)
    const entries = await readEntries(id, keyframe?.version ?? 0, version)
    const contiguous = entries.length === version - (keyframe?.version ?? 0) &&
      entries.every((e, i) => e.version === (keyframe?.version ?? 0) + i + 1)
    if (contiguous) return { keyframe, entries }
    // Archived while we read: the archive now holds it.
    if (version <= await archivedThrough(id)) return replay(id, version)
    throw new CorruptDataError(keys.key(id, 'log', version), 'log entries missing')
  })

  const version: Store['version'] = (id, v) => wrap(`reading record ${v} of ${id}`, async () => {
    const k = keys.key(id, 'ver', v)
    const value = await db.get(k)
    if (value !== undefined) return parse(VersionRecordSchema, k, value)
    const chunk = await readChunk(id, v)
    const i = chunk?.entries.findIndex(e => e.version === v) ?? -1
    return i < 0 ? null : parseArchivedRecord(k, (chunk as Chunk).records[i] as string)
  })

  const versions: Store['versions'] = (id, { before, limit }) => wrap(`listing versions of ${id}`, async () => {
    const out: VersionRecord[] = []
    for await (const [k, v] of db.iterator({ ...keys.kindRange(id, 'ver', { before }), reverse: true, limit })) {
      out.push(parse(VersionRecordSchema, k, v))
    }
    if (out.length >= limit) return out
    // Hot versions are all newer than the archive: continue there, newest chunk first, below the
    // oldest hot version read (archiving may have moved some of those since: no duplicates).
    const oldestHot = out[out.length - 1]?.version ?? Number.MAX_SAFE_INTEGER
    const through = Math.min((before ?? Number.MAX_SAFE_INTEGER) - 1, oldestHot - 1, await archivedThrough(id))
    return archivedRecordsThrough(id, through, limit, out, v => readChunk(id, v))
  })

  const versionsAfter: Store['versionsAfter'] = (id, after, limit) => wrap(`reading versions of ${id}`, async () => {
    // Archive first, then hot: versions archived in between would be missed, so read again
    // until the result runs on without a gap (archiving is rare; this almost never repeats).
    for (let attempt = 0; ; attempt++) {
      const out = await readVersionsAfter(id, after, limit)
      const contiguous = out.every((r, i) => r.version === after + 1 + i)
      if (contiguous || attempt >= 3) return out
    }
  })

  const readVersionsAfter = async (id: string, after: number, limit: number): Promise<VersionRecord[]> => {
    const { records: out, next } = await archivedRecordsAfter(id, after, limit, await archivedThrough(id), v => readChunk(id, v))
    if (out.length < limit) {
      for await (const [k, v] of db.iterator({ ...keys.kindRange(id, 'ver', { after: next - 1 }), limit: limit - out.length })) {
        out.push(parse(VersionRecordSchema, k, v))
      }
    }
    return out
  }

  const archivedThrough: Store['archivedThrough'] = async id => {
    for await (const k of db.keys({ ...keys.kindRange(id, 'arch'), reverse: true, limit: 1 })) return keys.keyToNum(k)
    return 0
  }

  const keyframes: Store['keyframes'] = id => wrap(`listing keyframes of ${id}`, async () => {
    const out: number[] = []
    for await (const k of db.keys(keys.kindRange(id, 'kf'))) out.push(keys.keyToNum(k))
    return out
  })

  const archive: Store['archive'] = (id, from, to) => wrap(`archiving ${id} (${from}, ${to}]`, async () => {
    // As stored (checksummed by their frames): archiving copies them, nothing reads them here.
    let storedKeyframe: Uint8Array | null = null
    if (from !== 0) {
      const k = keys.key(id, 'kf', from)
      const value = await db.get(k)
      if (value === undefined) throw new StorageError(`no keyframe at version ${from} of ${id}`)
      storedKeyframe = unframe(k, value)
    }
    const entries: EncodedEntry[] = []
    for await (const [k, v] of db.iterator(keys.kindRange(id, 'log', { after: from, through: to }))) entries.push({ version: keys.keyToNum(k), encoded: unframe(k, v) })
    const records: string[] = []
    const ops: BatchOp[] = []
    // One range read for the records (not a get per version): archiving runs on the write path.
    const stored = new Map<number, string>()
    for await (const [k, v] of db.iterator(keys.kindRange(id, 'ver', { after: from, through: to }))) {
      stored.set(keys.keyToNum(k), recordText(k, unframe(k, v)))
    }
    for (const entry of entries) {
      const k = keys.key(id, 'ver', entry.version)
      const record = stored.get(entry.version)
      if (record === undefined) throw new CorruptDataError(k, 'version record missing')
      records.push(record)
      ops.push({ type: 'del', key: k }, { type: 'del', key: keys.key(id, 'log', entry.version) })
    }
    if (from !== 0) ops.push({ type: 'del', key: keys.key(id, 'kf', from) })
    ops.push(putOp(keys.key(id, 'arch', to), frame(await encodeChunk({ from, storedKeyframe, records, entries }))))
    await db.batch(ops, writeOptions)
  })

  const putSnapshot: Store['putSnapshot'] = record => wrap(`writing snapshot ${record.id}`, () =>
    db.put(keys.key(record.workflowId, 'snap', record.id), frameJson(record)))

  const getSnapshot: Store['getSnapshot'] = (id, snapshotId) => wrap(`reading snapshot ${snapshotId}`, async () => {
    const k = keys.key(id, 'snap', snapshotId)
    const value = await db.get(k)
    return value === undefined ? null : parse(SnapshotRecordSchema, k, value)
  })

  const listSnapshots: Store['listSnapshots'] = id => wrap(`listing snapshots of ${id}`, async () => {
    const out = []
    for await (const [k, v] of db.iterator(keys.kindRange(id, 'snap'))) out.push(parse(SnapshotRecordSchema, k, v))
    return out.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  })

  const deleteSnapshots: Store['deleteSnapshots'] = (id, ids) => wrap(`deleting snapshots of ${id}`, () =>
    db.batch(ids.map(s => ({ type: 'del' as const, key: keys.key(id, 'snap', s) })), writeOptions))

  const putConflict: Store['putConflict'] = (record, meta) => wrap(`writing conflict ${record.id}`, () => {
    const ops: BatchOp[] = [putOp(keys.key(record.workflowId, 'conf', record.id), frameJson(record))]
    if (meta !== undefined) ops.push(putOp(keys.metaKey(meta.id), frameJson(meta)))
    heads.delete(record.workflowId)
    return db.batch(ops, writeOptions)
  })

  const listConflicts: Store['listConflicts'] = id => wrap(`listing conflicts of ${id}`, async () => {
    const out = []
    for await (const [k, v] of db.iterator(keys.kindRange(id, 'conf'))) out.push(parse(ConflictRecordSchema, k, v))
    return out
  })

  const listViolations: Store['listViolations'] = id => wrap(`listing violations of ${id}`, async () => {
    const out = []
    for await (const [k, v] of db.iterator(keys.kindRange(id, 'viol'))) out.push(parse(ViolationRecordSchema, k, v))
    return out
  })

  const countLog: Store['countLog'] = id => wrap(`counting ${id}`, async () => {
    let n = 0
    for await (const _ of db.keys(keys.kindRange(id, 'log'))) n++
    return n
  })

  const listWorkflows: Store['listWorkflows'] = () => wrap('listing workflows', async () => {
    const out: WorkflowMeta[] = []
    for await (const [k, v] of db.iterator(keys.metaRange)) out.push(parse(WorkflowMetaSchema, k, v))
    return out
  })

  const KEY = /^(_!keycheck|m!.+|w!.+!(kf|log|ver|arch|conf|viol)![0-9a-f]{16}|w!.+!snap!.+)$/
  const scan: Store['scan'] = () => wrap('scanning the store', async () => {
    const problems: Array<{ key: string, problem: string }> = []
    for await (const [k, v] of db.iterator()) {
      if (!KEY.test(k)) {
        problems.push({ key: k, problem: 'key outside the layout' })
        continue
      }
      try {
        if (isEncrypted(v) && !framer.encrypted) {
          checkFrame(k, v) // integrity only: the contents need the key
          continue
        }
        if (k === KEYCHECK_KEY) continue
        const payload = unframe(k, v)
        if (k.includes('!kf!')) decompressOrCorrupt(k, payload)
        else if (k.includes('!arch!')) decodeChunk(payload)
        else if (k.includes('!log!')) decodeUpdates(payload)
        else if (k.startsWith('m!')) parse(WorkflowMetaSchema, k, v)
        else if (k.includes('!ver!')) parse(VersionRecordSchema, k, v)
        else if (k.includes('!snap!')) parse(SnapshotRecordSchema, k, v)
        else if (k.includes('!conf!')) parse(ConflictRecordSchema, k, v)
        else if (k.includes('!viol!')) parse(ViolationRecordSchema, k, v)
      } catch (err) {
        problems.push({ key: k, problem: (err as Error).message })
      }
    }
    return problems
  })

  // The iterator reads from an implicit LevelDB snapshot taken when it is created, so the
  // export is one consistent point in time even while commits continue.
  const exportRecords: Store['exportRecords'] = () => db.iterator()

  const deleteWorkflow: Store['deleteWorkflow'] = id => wrap(`deleting ${id}`, async () => {
    const ops: BatchOp[] = [{ type: 'del', key: keys.metaKey(id) }]
    for await (const k of db.keys(keys.workflowRange(id))) ops.push({ type: 'del', key: k })
    heads.delete(id)
    await db.batch(ops, writeOptions)
  })

  const close = async (): Promise<void> => {
    // A commit queued for the combined batch still lands (or fails) before the database closes.
    while (combined !== null) await new Promise(resolve => setImmediate(resolve))
    await writing.catch(() => {})
    if (db.status === 'open' || db.status === 'opening') await db.close()
  }

  return {
    load, getMeta, heads: storedHeads, putMeta, commit, replay, version, versions, versionsAfter, archive, archivedThrough, keyframes,
    putSnapshot, getSnapshot, listSnapshots, deleteSnapshots, putConflict, listConflicts, listViolations,
    countLog, listWorkflows, scan, exportRecords, deleteWorkflow, close
  }
}

/** Writes raw records (a backup being restored) into a new LevelDB at `location`, in batches. */
export const importLevelRecords = async (location: string, records: AsyncIterable<[string, Uint8Array]>): Promise<number> => {
  const db: Db = new Level<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await wrap(`opening LevelDB at ${location}`, () => db.open())
  let n = 0
  try {
    let batch: BatchOp[] = []
    for await (const [key, value] of records) {
      batch.push(putOp(key, value))
      n++
      if (batch.length >= 1000) {
        await wrap('restoring records', () => db.batch(batch))
        batch = []
      }
    }
    if (batch.length > 0) await wrap('restoring records', () => db.batch(batch))
  } finally {
    await db.close()
  }
  return n
}

/**
 * An encrypted store holds a key-check value: opening it without a key, or with another key, is a
 * clear startup error instead of every read failing later. The first open with a key writes it.
 */
const checkKey = async (db: Db, location: string, framer: Framer | null): Promise<void> => {
  const stored = await db.get(KEYCHECK_KEY)
  if (stored === undefined) {
    if (framer !== null) await db.put(KEYCHECK_KEY, framer.frame(new TextEncoder().encode('accord')))
    return
  }
  if (framer === null) throw new StorageError(`the store at ${location} is encrypted: configure its key (ACCORD_ENCRYPTION_KEY or --encryption-key-file)`)
  try {
    framer.unframe(KEYCHECK_KEY, stored)
  } catch {
    throw new StorageError(`the encryption key does not open the store at ${location} (wrong key?)`)
  }
}
