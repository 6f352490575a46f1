/**
 * Node: the document lives in a local LevelDB through the server's storage module (same Store
 * interface, key layout, checksums and compaction), so an agent's replica is an Accord store of
 * its own: every local flush window is a local version, with keyframes and archiving as on the
 * server. LevelDB allows one process per directory; handles of one process share the store.
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import * as Y from 'yjs'
import { toBase64 } from 'lib0/buffer'
import { openLevelStore } from '../store/level.ts'
import { emptyMeta, type Store, type WorkflowMeta } from '../store/store.ts'
import { archiveOldVersions } from '../store/retention.ts'
import { readState } from '../model/json-yjs.ts'
import type { AttachPersistence } from '../client/persistence.ts'

const KEYFRAME_EVERY = 100
const RETENTION = { maxVersions: 100, archiveAfterDays: 30 }

const open = new Map<string, { store: Promise<Store>, users: number }>()

const acquire = (location: string): Promise<Store> => {
  const key = path.resolve(location)
  let entry = open.get(key)
  if (entry === undefined) {
    entry = { store: openLevelStore(key), users: 0 }
    open.set(key, entry)
    entry.store.catch(() => { open.delete(key) })
  }
  entry.users++
  return entry.store
}

const release = async (location: string): Promise<void> => {
  const key = path.resolve(location)
  const entry = open.get(key)
  if (entry === undefined || --entry.users > 0) return
  open.delete(key)
  await (await entry.store).close()
}

export const attachPersistence: AttachPersistence = (doc, workflowId, location, agentId) => {
  const loading = {}
  let meta: WorkflowMeta = emptyMeta(workflowId)
  let pending: Uint8Array[] = []
  let timer: ReturnType<typeof setImmediate> | null = null
  let chain: Promise<void> = Promise.resolve()
  let failure: Error | null = null
  const storePromise = acquire(location)

  const whenLoaded = storePromise.then(async store => {
    const stored = await store.load(workflowId)
    doc.transact(() => {
      if (stored.keyframe !== null) Y.applyUpdate(doc, stored.keyframe.state)
      for (const entry of stored.entries) for (const u of entry.updates) Y.applyUpdate(doc, u)
    }, loading)
    meta = stored.meta ?? meta
  })

  const write = async (updates: Uint8Array[]): Promise<void> => {
    const store = await storePromise
    await whenLoaded
    const version = meta.head + 1
    const keyframe = version % KEYFRAME_EVERY === 0 ? Y.encodeStateAsUpdate(doc) : undefined
    const next = { ...meta, head: version, updatedAt: Date.now(), bytes: meta.bytes + updates.reduce((n, u) => n + u.length, 0) }
    await store.commit(workflowId, {
      meta: next,
      updates,
      keyframe,
      record: {
        workflowId,
        version,
        parentVersion: meta.head,
        snapshot: toBase64(Y.encodeSnapshot(Y.snapshot(doc))),
        author: agentId,
        timestamp: next.updatedAt,
        description: 'local replica',
        meta: {},
        checksum: createHash('sha256').update(JSON.stringify(readState(doc))).digest('hex'),
        // The local replica records state, not change ops: the server's versions carry those.
        changes: []
      }
    })
    meta = next
    if (keyframe !== undefined) await archiveOldVersions(store, workflowId, RETENTION)
  }

  const flush = (): void => {
    if (timer !== null) clearImmediate(timer)
    timer = null
    if (pending.length === 0) return
    const batch = pending
    pending = []
    chain = chain.then(() => write(batch)).catch(err => { failure = err as Error })
  }

  const onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === loading) return
    pending.push(update)
    if (timer === null) timer = setImmediate(flush)
  }
  doc.on('update', onUpdate)

  return {
    whenLoaded,
    whenPersisted: async () => {
      flush()
      await chain
      if (failure !== null) throw failure
    },
    destroy: async () => {
      doc.off('update', onUpdate)
      flush()
      await chain
      await whenLoaded.catch(() => {})
      await release(location)
    }
  }
}
