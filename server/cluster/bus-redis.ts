/**
 * The cluster bus on Redis (see bus.ts for what it carries and why it may lose nothing important).
 *
 *   <prefix>versions:<p>  Streams, one per partition p of the workflow ids (bus-redis-versions.ts):
 *                         one entry per stored version { s: server, w: workflow id, v: encoded
 *                         version }; a server reads the partitions of the workflows it holds
 *                         and another server writes, or that a change stream or the list feed
 *                         here watches, with XREAD BLOCK, and decodes only the entries of those
 *   <prefix>awareness     a pub/sub channel for presence (ephemeral by nature)
 *   <prefix>lock:<key>    SET NX PX locks, released only by their holder (compare-and-delete)
 *   <prefix>writer:<id>   the server id holding a workflow's writer lease (SET NX PX, renewed by
 *                         its holder every third of the lease, compare-and-delete on release,
 *                         compare-and-set when its holder hands it to another server)
 *   <prefix>server:<id>   a pub/sub channel per server: forwarded updates to a writer, and the
 *                         writer's acknowledgements back (a lost one is retried by its sender)
 *
 * Streams, unlike pub/sub, keep entries: a server whose reader stalls briefly continues where it
 * was. Anything beyond that (trimmed entries, Redis restarted) is repaired from the store.
 */
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { AccordError } from '../../src/model/errors.ts'
import { importOptional } from '../../src/model/optional-dependency.ts'
import type { Logger } from '../ops/log.ts'
import { createVersionStreams } from './bus-redis-versions.ts'
import { decodeAwarenessMessage, decodeServerMessage, decodeVersion, encodeAwarenessMessage, encodeServerMessage, encodeVersion, type Bus, type BusHandlers } from './bus.ts'

export interface RedisBusOptions {
  url: string
  log: Logger
  /** Key prefix, so several clusters (or test runs) can share one Redis. Default `accord:`. */
  prefix?: string
  /** Approximate length kept over all version streams (default 10,000 versions; at least 1,000 per partition). */
  maxLen?: number
  /** Version stream partitions (default 64). Every server of a cluster must use the same count. */
  partitions?: number
  /** Lock lease; a holder that dies releases it after this long (default 10 s). */
  lockTtlMs?: number
  /** How long `lock` waits for a held lock (default 10 s). */
  lockWaitMs?: number
  /** Writer lease: how long after its holder died another server takes a workflow over (default 5 s). */
  writerLeaseMs?: number
}

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
/** Gives KEYS[1] from ARGV[1] to ARGV[2] for ARGV[3] ms, only while ARGV[1] holds it. */
const HAND_OFF = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end"
/** Renews every lease in KEYS still held by ARGV[1]; returns the indexes (1-based) of those lost. */
const RENEW = `local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then redis.call('pexpire', key, ARGV[2]) else table.insert(lost, i) end
end
return lost`

export const createRedisBus = (opts: RedisBusOptions): Bus => {
  const serverId = randomBytes(8).toString('hex')
  const prefix = opts.prefix ?? 'accord:'
  const channel = `${prefix}awareness`
  const serverChannel = (id: string): string => `${prefix}server:${id}`
  const inbox = serverChannel(serverId)
  const writerKey = (id: string): string => `${prefix}writer:${id}`
  const leaseMs = opts.writerLeaseMs ?? 5000
  /** Workflows this server holds the writer lease of. */
  const held = new Set<string>()
  let renewTimer: ReturnType<typeof setInterval> | null = null
  const maxLen = opts.maxLen ?? 10_000
  // The three connections exist from start() on: ioredis is an optional peer, loaded only then.
  let commands: Redis
  let reader: Redis
  let subscriber: Redis
  let started = false
  let closed = false
  const versions = createVersionStreams({ prefix, serverId, log: opts.log, maxLen, partitions: opts.partitions ?? 64 })

  const onEntry = (handlers: BusHandlers) => (workflowId: string | undefined, data: Buffer): void => {
    // A partition holds other workflows too: skip theirs undecoded.
    if (workflowId === undefined || !handlers.wants(workflowId)) {
      handlers.onSkipped?.()
      return
    }
    try {
      handlers.onVersion(decodeVersion(data))
    } catch (err) {
      opts.log.warn('ignoring a malformed bus entry', { workflowId, error: (err as Error).message })
    }
  }

  const start: Bus['start'] = async handlers => {
    const { Redis } = await importOptional('ioredis', 'The Redis cluster bus', () => import('ioredis'))
    const connect = (name: string): Redis => {
      // Auto-pipelining sends the commands of one event-loop turn (versions, forwards, acks) in one
      // socket write: on a busy server that write per command is a large share of the CPU.
      const r = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: null, enableAutoPipelining: name === 'cmd', connectionName: `accord-${name}-${serverId}` })
      r.on('error', err => { opts.log.warn('redis error', { connection: name, error: err.message }) })
      return r
    }
    commands = connect('cmd')
    reader = connect('reader')
    subscriber = connect('sub')
    started = true
    await Promise.all([commands.connect(), reader.connect(), subscriber.connect()])
    subscriber.on('messageBuffer', (from: Buffer, message: Buffer) => {
      if (from.toString() === inbox) {
        try {
          const m = decodeServerMessage(message)
          if ('forward' in m) handlers.onForward(m.forward)
          else handlers.onAck(m.ack)
        } catch (err) {
          opts.log.warn('ignoring a malformed server message', { error: (err as Error).message })
        }
        return
      }
      try {
        const m = decodeAwarenessMessage(message)
        if (m.server !== serverId) handlers.onAwareness(m.workflowId, m.update)
      } catch (err) {
        opts.log.warn('ignoring a malformed presence message', { error: (err as Error).message })
      }
    })
    await subscriber.subscribe(channel, inbox)
    renewTimer = setInterval(() => { void renew(handlers) }, Math.max(50, Math.floor(leaseMs / 3)))
    renewTimer.unref()
    // After a reconnect the reader may have missed entries that were trimmed: reconcile.
    reader.on('ready', () => { if (!closed) handlers.onReconnect() })
    await versions.start({ commands, reader }, { onEntry: onEntry(handlers), onReadError: handlers.onReconnect })
  }

  const renew = async (handlers: BusHandlers): Promise<void> => {
    if (held.size === 0 || closed) return
    const ids = Array.from(held)
    try {
      const lost = await commands.eval(RENEW, ids.length, ...ids.map(writerKey), serverId, leaseMs) as number[]
      for (const i of lost) {
        const id = ids[i - 1] as string
        if (!held.delete(id)) continue
        opts.log.warn('writer lease lost', { workflowId: id })
        handlers.onWriterLost(id)
      }
    } catch (err) {
      opts.log.warn('renewing writer leases failed', { error: (err as Error).message })
    }
  }

  const claimWriter: Bus['claimWriter'] = async id => {
    const key = writerKey(id)
    for (;;) {
      if (await commands.set(key, serverId, 'PX', leaseMs, 'NX') === 'OK') {
        held.add(id)
        return serverId
      }
      const holder = await commands.get(key)
      if (holder === serverId) held.add(id)
      if (holder !== null) return holder
    }
  }

  /** Releases on their way: close waits for them, or a lease would outlive its server by up to leaseMs. */
  const releasing = new Set<Promise<unknown>>()
  const releaseWriter: Bus['releaseWriter'] = async id => {
    if (!held.delete(id)) return
    const released = commands.eval(RELEASE, 1, writerKey(id), serverId).catch(() => {})
    releasing.add(released)
    await released
    releasing.delete(released)
  }

  const handOffWriter: Bus['handOffWriter'] = async (id, to) => {
    if (!held.has(id)) return false
    const moved = await commands.eval(HAND_OFF, 1, writerKey(id), serverId, to, leaseMs) === 1
    // Not renewed from here on either way: it names `to` now, or this server had lost it.
    held.delete(id)
    return moved
  }

  const send = (to: string, message: Uint8Array): void => {
    commands.publish(serverChannel(to), Buffer.from(message)).catch((err: Error) => {
      opts.log.debug('server message failed', { to, error: err.message })
    })
  }
  const forward: Bus['forward'] = (to, f) => { send(to, encodeServerMessage({ forward: f })) }
  const acknowledge: Bus['acknowledge'] = (to, ack) => { send(to, encodeServerMessage({ ack })) }

  const publishVersion: Bus['publishVersion'] = version => versions.publish(version.record.workflowId, encodeVersion(version))

  const publishAwareness: Bus['publishAwareness'] = (workflowId, update) => {
    commands.publish(channel, Buffer.from(encodeAwarenessMessage(serverId, workflowId, update))).catch((err: Error) => {
      opts.log.debug('presence publish failed', { error: err.message })
    })
  }

  const lock: Bus['lock'] = async (key, fn) => {
    const name = `${prefix}lock:${key}`
    const token = randomBytes(12).toString('hex')
    const deadline = Date.now() + (opts.lockWaitMs ?? 10_000)
    for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
      if (await commands.set(name, token, 'PX', opts.lockTtlMs ?? 10_000, 'NX') === 'OK') break
      if (Date.now() > deadline) throw new AccordError('TIMEOUT', `cluster lock ${key} stayed taken`)
      await new Promise(resolve => setTimeout(resolve, wait))
    }
    try {
      return await fn()
    } finally {
      await commands.eval(RELEASE, 1, name, token).catch(() => {})
    }
  }

  const close: Bus['close'] = async () => {
    if (closed) return
    closed = true
    if (renewTimer !== null) clearInterval(renewTimer)
    if (!started) return
    await Promise.all([...Array.from(held).map(releaseWriter), ...releasing])
    reader.disconnect()
    await versions.close()
    subscriber.disconnect()
    await commands.quit().catch(() => { commands.disconnect() })
  }

  return {
    serverId,
    start,
    publishVersion,
    publishAwareness,
    watch: versions.watch,
    watchAll: versions.watchAll,
    partitionsRead: versions.partitionsRead,
    lock,
    claimWriter,
    releaseWriter,
    handOffWriter,
    forward,
    acknowledge,
    close
  }
}
