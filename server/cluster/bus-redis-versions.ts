/**
 * The cluster bus's version streams on Redis. Stored versions are appended to one of
 * `partitions` streams, `<prefix>versions:<p>`, where p comes from a hash of the workflow id; a
 * server reads only the partitions of the workflows it watches: those loaded here that another
 * server writes (server/cluster/leased-writer.ts), and those a change stream or the list feed
 * here follows. Before partitioning, every server woke up for every version of the cluster:
 * with three servers and writer affinity, that reading was most of what three servers cost over
 * one at a low rate (docs/scale-out.md).
 *
 * - `watch(id)` counts one reason to read a workflow's partition (it is loaded here and written
 *   elsewhere, or a change stream is open on it) and returns the release; `watchAll()` reads
 *   every partition (the list feed). Entries of other workflows in a partition read are skipped
 *   undecoded.
 * - A partition newly read starts a little before now, by Redis's clock (read once at start), so
 *   a version stored while the workflow loaded is not missed; reading it twice is harmless
 *   (applying a version twice is a no-op). A blocked read is interrupted with CLIENT UNBLOCK so
 *   that it includes the new partition at once.
 * - Anything missed (trimmed entries, a reconnect, a clock far off) is repaired from the store by
 *   the cluster's reconcile, as before.
 *
 *   const versions = createVersionStreams({ prefix, serverId, log, maxLen, partitions })
 *   const release = versions.watch('wf-1')   // before or after start
 *   await versions.start({ commands, reader }, { onEntry, onReadError })
 *   await versions.publish('wf-1', bytes)
 */
import type { Redis } from 'ioredis'
import { digest } from 'lib0/hash/sha256'
import { encodeUtf8 } from 'lib0/string'
import { ClosedError } from '../../src/model/errors.ts'
import type { Logger } from '../ops/log.ts'

export interface VersionStreamsOptions {
  prefix: string
  serverId: string
  log: Logger
  /** Approximate entries kept per partition. */
  maxLen: number
  partitions: number
}

/** The command connection (publishing, CLIENT UNBLOCK) and the connection that blocks on XREAD. */
export interface VersionConnections { commands: Redis, reader: Redis }

export interface VersionStreams {
  /**
   * Starts the read loop on the connections: `onEntry` gets every entry of another server in a
   * partition read. Watches taken before start are read from then on.
   */
  start: (connections: VersionConnections, handlers: { onEntry: (workflowId: string | undefined, data: Buffer) => void, onReadError: () => void }) => Promise<void>
  publish: (workflowId: string, data: Uint8Array) => Promise<void>
  watch: (workflowId: string) => () => void
  watchAll: () => () => void
  /** The partition a workflow's versions go to (tests, tools). */
  partitionOf: (workflowId: string) => number
  /** How many partitions are read now (metrics). */
  partitionsRead: () => number
  close: () => Promise<void>
}

/** How far before now a newly read partition starts, in Redis's clock. */
const REWIND_MS = 2000

export const createVersionStreams = (o: VersionStreamsOptions): VersionStreams => {
  const keyOf = (p: number): string => `${o.prefix}versions:${p}`
  const partitionOf = (id: string): number => {
    const d = digest(encodeUtf8(id))
    return (((d[0] as number) << 24 | (d[1] as number) << 16 | (d[2] as number) << 8 | (d[3] as number)) >>> 0) % o.partitions
  }
  const perPartitionLen = Math.max(1000, Math.ceil(o.maxLen / o.partitions))
  /** Watched workflows (reasons each), watched workflows per partition, and watchAll's count. */
  const reasons = new Map<string, number>()
  const perPartition = new Map<number, number>()
  let all = 0
  /** Where each partition read continues: the last id read, or a start a little before now. */
  const cursors = new Map<number, string>()
  /** Redis's clock minus ours, read at start (ids are Redis timestamps). */
  let clockOffset = 0
  let conn: VersionConnections | null = null
  let readerId: number | null = null
  /** Increments each time the loop issues a read: an unblock retries until the read includes the change. */
  let generation = 0
  let blocking = false
  let wakeIdle: (() => void) | null = null
  let closed = false
  let loop: Promise<void> = Promise.resolve()

  const isRead = (p: number): boolean => all > 0 || perPartition.has(p)
  const startAt = (): string => `${Math.max(0, Date.now() + clockOffset - REWIND_MS)}-0`

  /** The read set grew: make the loop include it now. */
  const widened = (): void => {
    if (wakeIdle !== null) {
      wakeIdle()
      return
    }
    const seen = generation
    const unblock = (tries: number): void => {
      if (closed || generation !== seen || tries === 0) return
      if (blocking && readerId !== null) conn?.commands.client('UNBLOCK', readerId).catch(() => {})
      // The UNBLOCK may overtake the read it was meant for: ask again until the loop went round.
      setTimeout(() => { unblock(tries - 1) }, 20).unref()
    }
    unblock(10)
  }

  const add = (p: number): void => {
    if (!cursors.has(p)) {
      cursors.set(p, startAt())
      widened()
    }
  }
  const drop = (p: number): void => { if (!isRead(p)) cursors.delete(p) }

  const watch: VersionStreams['watch'] = id => {
    const p = partitionOf(id)
    const n = reasons.get(id) ?? 0
    reasons.set(id, n + 1)
    if (n === 0) perPartition.set(p, (perPartition.get(p) ?? 0) + 1)
    add(p)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (reasons.get(id) ?? 1) - 1
      if (left > 0) {
        reasons.set(id, left)
        return
      }
      reasons.delete(id)
      const inPartition = (perPartition.get(p) ?? 1) - 1
      if (inPartition > 0) perPartition.set(p, inPartition)
      else perPartition.delete(p)
      drop(p)
    }
  }

  const watchAll: VersionStreams['watchAll'] = () => {
    all++
    for (let p = 0; p < o.partitions; p++) add(p)
    let released = false
    return () => {
      if (released) return
      released = true
      all--
      for (let p = 0; p < o.partitions; p++) drop(p)
    }
  }

  const readLoop = async ({ reader }: VersionConnections, h: Parameters<VersionStreams['start']>[1]): Promise<void> => {
    while (!closed) {
      const parts = Array.from(cursors.keys())
      if (parts.length === 0) {
        await new Promise<void>(resolve => { wakeIdle = resolve })
        wakeIdle = null
        continue
      }
      let result: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
      try {
        if (readerId === null) readerId = Number(await reader.client('ID'))
        generation++
        blocking = true
        result = await reader.xreadBuffer('COUNT', 1000, 'BLOCK', 2000, 'STREAMS', ...parts.map(keyOf), ...parts.map(p => cursors.get(p) as string)) as typeof result
      } catch (err) {
        if (closed) return
        o.log.warn('bus read failed; reconciling with the store', { error: (err as Error).message })
        readerId = null
        h.onReadError()
        await new Promise(resolve => setTimeout(resolve, 200))
        continue
      } finally {
        blocking = false
      }
      for (const [key, entries] of result ?? []) {
        const p = Number(key.toString().slice(keyOf(0).length - 1))
        for (const [id, fields] of entries) {
          // A partition dropped meanwhile is not read on (its cursor is gone).
          if (cursors.has(p)) cursors.set(p, id.toString())
          const map = new Map<string, Buffer>()
          for (let i = 0; i + 1 < fields.length; i += 2) map.set((fields[i] as Buffer).toString(), fields[i + 1] as Buffer)
          if (map.get('s')?.toString() === o.serverId) continue
          const data = map.get('v')
          if (data !== undefined) h.onEntry(map.get('w')?.toString(), data)
        }
      }
    }
  }

  const start: VersionStreams['start'] = async (connections, handlers) => {
    conn = connections
    const [seconds, micros] = await connections.commands.time()
    clockOffset = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - Date.now()
    // After a reconnect the reader has a new client id.
    connections.reader.on('ready', () => { readerId = null })
    loop = readLoop(connections, handlers)
  }

  const publish: VersionStreams['publish'] = async (workflowId, data) => {
    if (conn === null) throw new ClosedError('the cluster bus (not started)')
    await conn.commands.xadd(keyOf(partitionOf(workflowId)), 'MAXLEN', '~', perPartitionLen, '*', 's', o.serverId, 'w', workflowId, 'v', Buffer.from(data))
  }

  const close: VersionStreams['close'] = async () => {
    closed = true
    wakeIdle?.()
    await loop.catch(() => {})
  }

  return { start, publish, watch, watchAll, partitionOf, partitionsRead: () => cursors.size, close }
}
