/**
 * Cluster mode, wired: the Redis bus, a leased writer (leased-writer.ts) for every workflow the
 * registry loads, the bus's handlers (versions, presence, forwards, acknowledgements, lost
 * leases), the commit hook that publishes each version stored here, and the reconcile timer that
 * compares every loaded workflow with the store's head, all in one query (so a missed bus message
 * only delays).
 *
 *   const cluster = createCluster(options.cluster, { store, log, track, onUnloadedVersion })
 *   const registry = createRegistry({ ..., writer: cluster.writer, hooks: [..., cluster.hook] })
 *   await cluster.start(registry)
 *   ...
 *   cluster.stop()              // on shutdown: no more reconciling
 *   await registry.close()
 *   await cluster.close()       // after the registry: its last flushes still forward
 */
import type * as Y from 'yjs'
import { AccordError } from '../../src/model/errors.ts'
import type { VersionRecord } from '../../src/model/schema.ts'
import type { Store } from '../../src/store/store.ts'
import type { Logger } from '../ops/log.ts'
import type { CommitHook } from '../sync/commit-hooks.ts'
import type { Registry } from '../sync/registry.ts'
import type { Workflow } from '../sync/workflow.ts'
import type { WriterFactory } from '../sync/writer.ts'
import type { Forward } from './bus.ts'
import { createRedisBus } from './bus-redis.ts'
import { LeasedWriter } from './leased-writer.ts'

export interface ClusterOptions {
  redisUrl: string
  prefix?: string
  /** How often each loaded workflow is compared with the store's head (default 1000 ms). */
  reconcileMs?: number
  /** How long after a writer died another server takes its workflows over (default 5000 ms). */
  writerLeaseMs?: number
  /** How long a forwarded update waits for the writer's acknowledgement before it goes again (default 2000 ms). */
  forwardTimeoutMs?: number
}

export interface ClusterContext {
  store: Store
  log: Logger
  /** Runs a background task (the server waits for them on close, and logs `what` failed). */
  track: (task: Promise<unknown>, what: string) => void
  /** A version another server stored, of a workflow not loaded here (the change feeds still want it). */
  onUnloadedVersion: (record: VersionRecord) => void
  /** Whether the change feeds here want versions of this workflow while it is not loaded. */
  watchesUnloaded: (workflowId: string) => boolean
  /** A version read from a watched partition was skipped undecoded: its workflow is neither loaded nor watched here (metrics). */
  onSkippedVersion?: () => void
  /** A version another server stored was received and decoded here (metrics). */
  onReceivedVersion?: () => void
  /** Updates were forwarded to another server's writer (metrics). */
  onForwarded?: (updates: number) => void
  /** A commit found its version number taken by another server (metrics). */
  onRace?: () => void
  /** This server handed a writer lease to a server whose clients write the workflow (metrics). */
  onHandOff?: () => void
}

export interface Cluster {
  /** This server's id on the bus (what the writer lease names). */
  readonly serverId: string
  /** For the registry's workflows (WorkflowOptions.writer). */
  readonly writer: WriterFactory
  /** Publishes every version stored here to the other servers. */
  readonly hook: CommitHook
  /** Receive a workflow's versions while it is not loaded here (a change stream is open); returns the release. */
  watch: (workflowId: string) => () => void
  /** Receive every workflow's versions (the list feed is open); returns the release. */
  watchAll: () => () => void
  /** How many of the bus's version partitions this server reads now (metrics). */
  partitionsRead: () => number
  /** Connects the bus and starts serving the registry's workflows to the other servers. */
  start: (registry: Registry) => Promise<void>
  /** Stops reconciling: first on shutdown (the bus stays open for the registry's last flushes). */
  stop: () => void
  /** Stops reconciling and closes the bus. */
  close: () => Promise<void>
}

export const createCluster = (options: ClusterOptions, ctx: ClusterContext): Cluster => {
  const { store, log, track } = ctx
  const bus = createRedisBus({ url: options.redisUrl, prefix: options.prefix, writerLeaseMs: options.writerLeaseMs, log })
  /** Each loaded workflow's writer, by its document (exactly that load of the workflow). */
  const writers = new WeakMap<Y.Doc, LeasedWriter>()
  let reconcileTimer: ReturnType<typeof setInterval> | null = null

  const writer: WriterFactory = async (host, state) => {
    const leased = await LeasedWriter.open(host, state, {
      bus,
      store,
      log,
      forwardTimeoutMs: options.forwardTimeoutMs ?? 2000,
      onRace: ctx.onRace,
      onForwarded: ctx.onForwarded,
      onHandOff: ctx.onHandOff
    })
    writers.set(host.doc, leased)
    return leased
  }

  const hook: CommitHook = {
    name: 'cluster bus',
    afterVersion: v => { if (v.local) track(bus.publishVersion({ meta: v.workflow.currentMeta, record: v.record, updates: v.updates }), 'publishing a version') }
  }

  const start = async (registry: Registry): Promise<void> => {
    /** The writer of a workflow loaded (and ready) here. */
    const loaded = (id: string): LeasedWriter | undefined => {
      const wf = registry.get(id)
      return wf === undefined ? undefined : writers.get(wf.doc)
    }
    // One heads query per pass for every loaded workflow (not a getMeta per workflow per second,
    // each holding that workflow's commit queue for a round trip); only those behind catch up.
    let comparing = false
    const catchUpBehind = async (held: Array<[Workflow, LeasedWriter]>): Promise<void> => {
      // Without heads (an optional Store method), or when that query fails, each workflow asks
      // on its own, so one unreadable workflow cannot stop the others catching up.
      const heads = await store.heads?.(held.map(([wf]) => wf.id)).catch((err: Error) => {
        log.warn('reading the heads of loaded workflows failed; comparing one by one', { error: err.message })
        return undefined
      })
      for (const [wf, leased] of held) {
        if (heads === undefined || (heads.get(wf.id) ?? 0) > wf.head) track(leased.catchUp(), 'catching up with the store')
      }
    }
    const reconcile = (): void => {
      const held = registry.all().flatMap(wf => {
        const leased = writers.get(wf.doc)
        return leased === undefined ? [] : [[wf, leased] as [Workflow, LeasedWriter]]
      })
      for (const [, leased] of held) track(leased.retryForwards(), 'retrying forwards')
      // A pass still waiting on a slow store is not stacked with another.
      if (held.length === 0 || comparing) return
      comparing = true
      track(catchUpBehind(held).finally(() => { comparing = false }), 'comparing with the store')
    }
    // Updates forwarded here are stored even if the lease moved meanwhile (the store keeps a
    // second writer safe); the workflow is loaded for it when it is not.
    const storeForwarded = (f: Forward): Promise<void> => registry.with(f.workflowId, async wf => {
      const leased = writers.get(wf.doc)
      if (leased === undefined) throw new AccordError('WORKFLOW_UNAVAILABLE', `workflow ${f.workflowId} has no cluster writer`)
      const version = await leased.applyForwarded(f)
      const handoff = await leased.handOff(f)
      bus.acknowledge(f.from, { workflowId: f.workflowId, seq: f.seq, version, handoff })
    })
    await bus.start({
      onVersion: v => {
        ctx.onReceivedVersion?.()
        const leased = loaded(v.record.workflowId)
        if (leased !== undefined) track(leased.applyRemote(v), 'applying a remote version')
        else ctx.onUnloadedVersion(v.record)
      },
      wants: id => registry.get(id) !== undefined || ctx.watchesUnloaded(id),
      onSkipped: ctx.onSkippedVersion,
      onAwareness: (id, update) => { loaded(id)?.applyRemoteAwareness(update) },
      onReconnect: reconcile,
      onForward: f => { track(storeForwarded(f), 'storing forwarded updates') },
      onAck: ack => { loaded(ack.workflowId)?.acknowledged(ack.seq, ack.version, ack.handoff) },
      onWriterLost: id => { loaded(id)?.writerLost() }
    })
    reconcileTimer = setInterval(reconcile, options.reconcileMs ?? 1000)
    reconcileTimer.unref()
  }

  const stop = (): void => {
    if (reconcileTimer !== null) clearInterval(reconcileTimer)
    reconcileTimer = null
  }

  const close = async (): Promise<void> => {
    stop()
    await bus.close()
  }

  return { serverId: bus.serverId, writer, hook, watch: id => bus.watch(id), watchAll: () => bus.watchAll(), partitionsRead: () => bus.partitionsRead(), start, stop, close }
}
