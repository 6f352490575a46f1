/**
 * The leased writer (a WorkflowWriter, server/sync/writer.ts): the single-writer protocol of a
 * workflow loaded on several servers that share one store. One server at a time writes it (it
 * holds the writer lease on the bus); the others forward their peers' updates to it and relay
 * them to their own peers once it acknowledges (stored before broadcast, as on one server).
 *
 * - Lease: claimed when the workflow loads, asked again before the next write once lost, given
 *   up when the workflow stops. A lease error makes this server write (the store keeps that safe).
 * - Hand-off: the lease goes where the clients are. A writer with no clients of its own that
 *   stores a forward from a server that has some passes that server the lease with the
 *   acknowledgement, so a workflow whose clients moved (a balancer's failover, then failback)
 *   stops being forwarded. A server with clients never hands off: the lease cannot ping-pong.
 * - Forward, acknowledge, retry, takeover: a forward unacknowledged after `forwardTimeoutMs`
 *   goes again to whoever holds the lease now; when nobody does, this server takes the lease and
 *   stores the forwarded windows itself, in the order sent (applying an update twice is a no-op).
 * - Versions stored elsewhere: received from the bus while another server writes (or who
 *   writes is unknown); the lease holder reads none, since the versions of a workflow it writes
 *   are its own. The next one in line is applied from the bus message itself;
 *   after a gap (or a missed message, found by reconciling) the workflow catches up from the
 *   store. A commit that finds its version number taken (a lease race) catches up the same way
 *   and the workflow renumbers its window; its changes are then a diff from the last version.
 * - Presence of this server's peers is published to the other servers; `exclusive` runs under
 *   the cluster-wide lock, after catching up.
 *
 *   const writer = await LeasedWriter.open(host, state, { bus, store, log, forwardTimeoutMs: 2000 })
 *   // bus handlers (cluster.ts): writer.applyRemote(v), writer.acknowledged(seq, version, handoff),
 *   // writer.applyForwarded(forward) then writer.handOff(forward), writer.writerLost(),
 *   // writer.applyRemoteAwareness(update)
 *   // and periodically writer.catchUp(), writer.retryForwards()
 */
import * as Y from 'yjs'
import jsonpatch, { type Operation } from 'fast-json-patch'
import { applyAwarenessUpdate, encodeAwarenessUpdate, type Awareness } from 'y-protocols/awareness'
import { AccordError } from '../../src/model/errors.ts'
import { readState } from '../../src/model/json-yjs.ts'
import type { JsonObject } from '../../src/model/json.ts'
import type { VersionRecord } from '../../src/model/schema.ts'
import type { Store, WorkflowMeta } from '../../src/store/store.ts'
import type { Logger } from '../ops/log.ts'
import { originAgent, type ChangeOrigin, type RemoteVersion } from '../sync/contracts.ts'
import type { Pending } from '../sync/version-cut.ts'
import type { WorkflowWriter, WriterHost } from '../sync/writer.ts'
import type { Bus, Forward } from './bus.ts'

export interface LeasedWriterOptions {
  bus: Pick<Bus, 'serverId' | 'lock' | 'publishAwareness' | 'claimWriter' | 'releaseWriter' | 'handOffWriter' | 'forward' | 'watch'>
  store: Store
  log: Logger
  /** How long a forward waits for its acknowledgement before it is sent again (or taken over). */
  forwardTimeoutMs: number
  /** A commit found the version number taken (two servers wrote at once). */
  onRace?: () => void
  /** A forward (of this many updates) went to the writer, first or again. */
  onForwarded?: (updates: number) => void
  /** This server handed its lease to a server whose clients write the workflow. */
  onHandOff?: () => void
}

/** Origin of presence updates relayed from other servers (not published back). */
const REMOTE_AWARENESS = Symbol('remote awareness')

const unavailable = (id: string): AccordError => new AccordError('WORKFLOW_UNAVAILABLE', `workflow ${id} is not writable`)

export class LeasedWriter implements WorkflowWriter {
  private readonly host: WriterHost
  private readonly opts: LeasedWriterOptions
  /** The server that stores this workflow's writes (null: ask before the next write). */
  private holder: string | null = null
  /** The state as of the last version, and whether versions stored elsewhere came since the last cut. */
  private committedJson: JsonObject
  private remoteSinceCut = false
  private forwardSeq = 0
  /** Forwards not acknowledged yet, by sequence number (in the order sent). */
  private readonly inflight = new Map<number, { batch: Pending[], to: string, sentAt: number }>()
  /** The newest version an acknowledgement named: settled means the document reached it. */
  private ackedVersion = 0
  private settleWaiters: Array<() => void> = []
  private closed = false
  /** Receiving this workflow's versions from the bus: set while another server may write it. */
  private unwatch: (() => void) | null = null

  private constructor (host: WriterHost, state: JsonObject, opts: LeasedWriterOptions) {
    this.host = host
    this.committedJson = state
    this.opts = opts
  }

  /** The writer of `host`'s workflow, with the lease claimed (or its holder learnt). */
  static async open (host: WriterHost, state: JsonObject, opts: LeasedWriterOptions): Promise<LeasedWriter> {
    const writer = new LeasedWriter(host, state, opts)
    // Claimed before watching: a version the holder stores meanwhile is still read, since a
    // newly watched partition is read from a little before now (and reconcile repairs the rest).
    await writer.claim()
    return writer
  }

  /**
   * Learns the writer lease's holder. On a lease error this server writes (the store keeps that
   * safe) and keeps reading the bus, since another server may hold the lease after all.
   */
  private async claim (): Promise<void> {
    try {
      this.setHolder(await this.opts.bus.claimWriter(this.host.id), true)
    } catch (err) {
      this.opts.log.warn('could not learn the writer; writing from this server', { workflowId: this.host.id, error: (err as Error).message })
      this.setHolder(this.opts.bus.serverId, false)
    }
  }

  /**
   * The holder changed: the bus is read for this workflow unless this server holds the lease
   * (`leased`). With writer affinity that leaves most servers' partitions unread.
   */
  private setHolder (holder: string | null, leased: boolean): void {
    this.holder = holder
    const reads = !this.closed && !(leased && holder === this.opts.bus.serverId)
    if (reads && this.unwatch === null) this.unwatch = this.opts.bus.watch(this.host.id)
    if (!reads && this.unwatch !== null) {
      this.unwatch()
      this.unwatch = null
    }
  }

  get isWriter (): boolean { return this.holder === this.opts.bus.serverId }

  writesHere (): boolean | Promise<boolean> {
    if (this.holder !== null) return this.isWriter
    return this.claim().then(() => this.isWriter)
  }

  /** Sends the window to the writer (relayed here once stored). */
  forward (batch: Pending[]): void {
    const seq = ++this.forwardSeq
    this.inflight.set(seq, { batch, to: this.holder as string, sentAt: Date.now() })
    this.send(seq)
  }

  private send (seq: number): void {
    const entry = this.inflight.get(seq)
    if (entry === undefined) return
    this.opts.onForwarded?.(entry.batch.length)
    this.opts.bus.forward(entry.to, {
      workflowId: this.host.id,
      from: this.opts.bus.serverId,
      seq,
      updates: entry.batch.map(p => ({
        update: p.update,
        author: originAgent(p.origin),
        description: p.description,
        meta: p.meta,
        violations: p.violations,
        compensates: p.compensates === true
      })),
      peers: this.host.peers
    })
  }

  diffBase (): JsonObject | null {
    const base = this.remoteSinceCut ? this.committedJson : null
    this.remoteSinceCut = false
    return base
  }

  committed (state: JsonObject): void {
    this.committedJson = state
  }

  async onHeadMoved (): Promise<boolean> {
    this.opts.onRace?.()
    await this.catchUpNow()
    return true
  }

  private get isSettled (): boolean {
    return (this.inflight.size === 0 && this.host.head >= this.ackedVersion) || this.closed
  }

  private wake (): void {
    if (!this.isSettled || this.settleWaiters.length === 0) return
    const waiters = this.settleWaiters
    this.settleWaiters = []
    for (const wake of waiters) wake()
  }

  /**
   * Waits until every forward is acknowledged and the document holds the versions the
   * acknowledgements named. A writer that does not answer is asked again or taken over, and a
   * version that does not arrive over the bus is read from the store.
   */
  async settled (): Promise<void> {
    while (!this.isSettled) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await new Promise<void>(resolve => {
        this.settleWaiters.push(resolve)
        timer = setTimeout(resolve, this.opts.forwardTimeoutMs)
      })
      clearTimeout(timer)
      if (this.isSettled) return
      await this.retryForwards()
      if (this.inflight.size === 0 && this.host.head < this.ackedVersion) await this.catchUp()
    }
  }

  exclusive<T> (key: string, fn: () => Promise<T>): Promise<T> {
    return this.opts.bus.lock(`${this.host.id}:${key}`, async () => {
      await this.catchUp()
      return fn()
    })
  }

  presenceChanged (awareness: Awareness, clients: number[], origin: unknown): void {
    if (origin !== REMOTE_AWARENESS) this.opts.bus.publishAwareness(this.host.id, encodeAwarenessUpdate(awareness, clients))
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.setHolder(this.holder, false)
    this.wake()
    if (this.isWriter) {
      this.opts.bus.releaseWriter(this.host.id).catch((err: Error) => { this.opts.log.warn('releasing the writer lease failed', { workflowId: this.host.id, error: err.message }) })
    }
  }

  /** This server's lease was lost; the next write asks who writes now. */
  writerLost (): void {
    this.setHolder(null, false)
  }

  /** A presence update from a client of another server. */
  applyRemoteAwareness (update: Uint8Array): void {
    if (this.closed) return
    applyAwarenessUpdate(this.host.awareness, update, REMOTE_AWARENESS)
  }

  /**
   * Applies a version another server stored. The next version in line is applied from the
   * message itself; after a gap the workflow catches up from the store.
   */
  applyRemote (remote: RemoteVersion): Promise<void> {
    return this.host.enqueue(async () => {
      if (remote.record.version <= this.host.head || this.host.isFailed) return
      if (remote.record.version !== this.host.head + 1) {
        await this.catchUpNow()
        return
      }
      this.applyVersions(remote.meta, [remote.record], remote.updates)
    })
  }

  /** Brings the document up to the store's head (after a missed notification). */
  catchUp (): Promise<void> {
    return this.host.enqueue(() => this.catchUpNow())
  }

  private async catchUpNow (): Promise<void> {
    const { store } = this.opts
    const { id } = this.host
    const meta = await store.getMeta(id)
    if (meta === null || meta.head <= this.host.head || this.host.isFailed) return
    const records = await store.versionsAfter(id, this.host.head, meta.head - this.host.head)
    const replay = await store.replay(id, meta.head)
    const updates: Uint8Array[] = []
    if (replay.keyframe !== null && replay.keyframe.version > this.host.head) updates.push(replay.keyframe.state)
    for (const entry of replay.entries) if (entry.version > this.host.head) updates.push(...entry.updates)
    this.applyVersions(meta, records.filter(r => r.version <= meta.head), updates)
  }

  private applyVersions (meta: WorkflowMeta, records: VersionRecord[], updates: Uint8Array[]): void {
    const last = records[records.length - 1]
    if (this.host.applyStored(updates, last ?? { author: 'accord', description: 'catch-up' })) this.remoteSinceCut = true
    try {
      let json = this.committedJson
      for (const record of records) json = jsonpatch.applyPatch(json, record.changes as Operation[], false, false).newDocument
      this.committedJson = json
    } catch (err) {
      this.opts.log.warn('remote changes did not apply to the last state; diffing from the current one', { workflowId: this.host.id, error: (err as Error).message })
      this.committedJson = readState(this.host.doc)
    }
    this.host.advance(meta, records)
    this.wake()
  }

  /**
   * The writer stored forward `seq` in `version`; this server's peers get it now. With `handoff`
   * the lease names this server: it writes from the next cut that follows catching up to
   * `version` (so its first commit does not race the old writer's last).
   */
  acknowledged (seq: number, version: number, handoff = false): void {
    if (this.closed) return
    const entry = this.inflight.get(seq)
    if (entry !== undefined) {
      this.inflight.delete(seq)
      this.ackedVersion = Math.max(this.ackedVersion, version)
      this.host.deliver(entry.batch)
      this.wake()
    }
    if (!handoff) return
    this.host.enqueue(async () => {
      if (this.host.head < version) await this.catchUpNow()
      await this.claim()
    }).catch((err: Error) => { this.opts.log.warn('taking a handed-off lease failed', { workflowId: this.host.id, error: err.message }) })
  }

  /**
   * As the writer, after storing `forward`: hands the lease to its sender when this server has no
   * clients of the workflow and the sender has. Runs in the write queue, after every cut queued
   * before it, so nothing is committed here once it returns true; later windows go to the sender.
   */
  async handOff (forward: Forward): Promise<boolean> {
    if (forward.peers === 0 || this.host.peers > 0 || !this.isWriter) return false
    return this.host.enqueue(async () => {
      if (this.closed || this.host.isFailed || this.host.peers > 0 || !this.isWriter) return false
      const moved = await this.opts.bus.handOffWriter(this.host.id, forward.from).catch((err: Error) => {
        this.opts.log.warn('handing the writer lease off failed; keeping it', { workflowId: this.host.id, error: err.message })
        return null
      })
      if (moved === null) return false
      // Not moved: the lease was lost meanwhile, so ask who writes before the next write.
      this.setHolder(moved ? forward.from : null, false)
      if (moved) {
        this.opts.onHandOff?.()
        this.opts.log.info('handed the writer lease to the server with the clients', { workflowId: this.host.id, to: forward.from })
      }
      return moved
    })
  }

  /**
   * Forwards unacknowledged for longer than the timeout go again, to whoever holds the lease
   * now; if nobody does, this server takes the lease and stores them itself.
   */
  async retryForwards (): Promise<void> {
    if (this.inflight.size === 0 || this.closed) return
    const now = Date.now()
    const stale = Array.from(this.inflight).filter(([, e]) => now - e.sentAt >= this.opts.forwardTimeoutMs)
    if (stale.length === 0) return
    await this.claim()
    if (this.isWriter) {
      this.opts.log.warn('taking over as writer', { workflowId: this.host.id, forwards: this.inflight.size })
      await this.host.enqueue(async () => {
        // The map iterates in the order sent: the batches keep their order before newer writes.
        const batches = Array.from(this.inflight.values()).flatMap(e => e.batch)
        this.inflight.clear()
        this.host.requeue(batches)
      })
      this.wake()
      return
    }
    for (const [seq, entry] of stale) {
      entry.to = this.holder as string
      entry.sentAt = now
      this.send(seq)
    }
  }

  /**
   * As the writer: applies updates another server forwarded and resolves with the version that
   * holds them once it is stored (the acknowledgement the forwarder waits for).
   */
  async applyForwarded (forward: Forward): Promise<number> {
    if (this.host.isFailed || this.closed) throw unavailable(this.host.id)
    for (const item of forward.updates) {
      const origin: ChangeOrigin = { agentId: item.author }
      const entry = this.host.applyAs(origin, { description: item.description, meta: item.meta }, () => { Y.applyUpdate(this.host.doc, item.update, origin) })
      if (entry !== undefined) {
        entry.violations = item.violations
        if (item.compensates) entry.compensates = true
      }
    }
    await this.host.enqueue(async () => {})
    // No longer the writer (the lease moved): they were forwarded on; wait for that writer.
    await this.settled()
    if (this.host.isFailed) throw unavailable(this.host.id)
    return this.host.head
  }
}
