/**
 * The embedded default backend: LevelDB via `level`. Only this file touches the database.
 * Key layout: keys.ts. Values: framed with checksums (frame.ts).
 */
import { Level } from 'level'
import { StorageError } from '../../src/errors.ts'
import { frame, frameJson, unframe, unframeJson } from './frame.ts'
import * as keys from './keys.ts'
import { WorkflowMetaSchema, type Store, type StoredWorkflow, type WorkflowMeta } from './store.ts'
import { CorruptDataError } from '../../src/errors.ts'

type Db = Level<string, Uint8Array>
type BatchOp = { type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }

const wrap = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof CorruptDataError || err instanceof StorageError) throw err
    throw new StorageError(`${what} failed: ${(err as Error).message}`, { cause: err })
  }
}

const parseMeta = (key: string, value: Uint8Array): WorkflowMeta => {
  const parsed = WorkflowMetaSchema.safeParse(unframeJson(key, value))
  if (!parsed.success) throw new CorruptDataError(key, 'meta record does not match its schema')
  return parsed.data
}

export const openLevelStore = async (location: string): Promise<Store> => {
  const db: Db = new Level<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await wrap(`opening LevelDB at ${location}`, () => db.open())

  const load = (id: string): Promise<StoredWorkflow> => wrap(`loading ${id}`, async () => {
    const mk = keys.metaKey(id)
    const metaValue = await db.get(mk)
    const meta = metaValue === undefined ? null : parseMeta(mk, metaValue)
    let keyframe: Uint8Array | null = null
    let afterSeq = -1
    for await (const [key, value] of db.iterator({ ...keys.keyframeRange(id), reverse: true, limit: 1 })) {
      keyframe = unframe(key, value)
      afterSeq = keys.keyToSeq(key)
    }
    const updates: Uint8Array[] = []
    for await (const [key, value] of db.iterator(keys.logRange(id, afterSeq))) {
      updates.push(unframe(key, value))
    }
    return { meta, keyframe, updates }
  })

  const append = (id: string, firstSeq: number, updates: Uint8Array[], meta: WorkflowMeta): Promise<void> =>
    wrap(`appending to ${id}`, async () => {
      const ops: BatchOp[] = updates.map((u, i) => ({ type: 'put', key: keys.logKey(id, firstSeq + i), value: frame(u) }))
      ops.push({ type: 'put', key: keys.metaKey(id), value: frameJson(meta) })
      await db.batch(ops)
    })

  const compact = (id: string, seq: number, state: Uint8Array, meta: WorkflowMeta): Promise<void> =>
    wrap(`compacting ${id}`, async () => {
      const ops: BatchOp[] = []
      for await (const key of db.keys({ gt: keys.logRange(id).gt, lte: keys.logKey(id, seq) })) {
        ops.push({ type: 'del', key })
      }
      for await (const key of db.keys(keys.keyframeRange(id))) {
        if (keys.keyToSeq(key) < seq) ops.push({ type: 'del', key })
      }
      ops.push({ type: 'put', key: keys.keyframeKey(id, seq), value: frame(state) })
      ops.push({ type: 'put', key: keys.metaKey(id), value: frameJson(meta) })
      await db.batch(ops)
    })

  const countLog = (id: string): Promise<number> => wrap(`counting ${id}`, async () => {
    let n = 0
    for await (const _ of db.keys(keys.logRange(id))) n++
    return n
  })

  const listWorkflows = (): Promise<WorkflowMeta[]> => wrap('listing workflows', async () => {
    const out: WorkflowMeta[] = []
    for await (const [key, value] of db.iterator(keys.metaRange)) out.push(parseMeta(key, value))
    return out
  })

  const deleteWorkflow = (id: string): Promise<void> => wrap(`deleting ${id}`, async () => {
    const ops: BatchOp[] = [{ type: 'del', key: keys.metaKey(id) }]
    for await (const key of db.keys(keys.workflowRange(id))) ops.push({ type: 'del', key })
    await db.batch(ops)
  })

  const close = async (): Promise<void> => {
    if (db.status === 'open' || db.status === 'opening') await db.close()
  }

  return { load, append, compact, countLog, listWorkflows, deleteWorkflow, close }
}
