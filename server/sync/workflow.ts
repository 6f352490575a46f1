/**
 * One loaded workflow: its live Y.Doc (gc on), awareness, connected peers and write queue.
 *
 * Updates are applied to the doc as they arrive and collected per event-loop turn (a flush
 * window). Each window becomes one version (version-cut.ts): its updates, a version record and
 * every `keyframeEvery` versions a keyframe are written as one atomic batch (group commit; each
 * workflow has its own queue) and only then broadcast (fanout.ts). If a write keeps failing, the
 * workflow stops: peers are closed with 4500 and it is unloaded, so nothing unstored is ever
 * acknowledged; clients re-sync on reconnect.
 */
import * as Y from 'yjs'
import * as awarenessProtocol from 'y-protocols/awareness'
import jsonpatch, { type Operation } from 'fast-json-patch'
import { CloseCodes } from '../../src/model/close-codes.ts'
import { AccordError, HeadMovedError } from '../../src/model/errors.ts'
import { readState, setMapContents, stateRoot } from '../../src/model/json-yjs.ts'
import { toPointer, type JsonObject } from '../../src/model/json.ts'
import { RUNTIME_ROOTS, EVENTS_ROOT, isPaused, type AgentStatus } from '../../src/model/runtime.ts'
import type { ZodType } from 'zod'
import { eventsToOps } from '../../src/model/changes.ts'
import type { ChangeMeta, VersionRecord } from '../../src/model/schema.ts'
import { detectConflicts, type DetectedConflict } from '../history/conflicts.ts'
import { pathMatches } from '../http/auth.ts'
import type { Logger } from '../ops/log.ts'
import type { Forward, ForwardedUpdate } from '../cluster/bus.ts'
import { deliver, relay, type Outgoing } from './fanout.ts'
import { encodeAwareness, originAgent, type ChangeOrigin, type Peer, type RemoteVersion } from './contracts.ts'
import { emptyMeta, type Store, type WorkflowMeta } from '../../src/store/store.ts'
import { QuotaExceededError, cutVersion, type Cut, type Pending } from './version-cut.ts'
import { assertEncodableUpdate } from './update-check.ts'
import { runHooks, type CommitHook } from './commit-hooks.ts'

export interface WorkflowOptions {
  store: Store
  log: Logger
  /** A keyframe (full state) is stored every this many versions; bounds cold-load replay. */
  keyframeEvery: number
  /** Attempts per write before the workflow is failed (transient errors are retried). */
  writeAttempts: number
  /** Hot bytes per workflow above which writes are refused (Infinity: no quota). */
  quotaBytes: number
  /** Called once when a write failed for good; the owner unloads the workflow. */
  onFailure: (workflow: Workflow, error: Error) => void
  /** What runs after each commit (change feed, metrics, bus, archiving, deadlines, resolver). */
  hooks: readonly CommitHook[]
  /** Per-status lifecycle timeouts, to compute the runtime's next deadline. */
  timeouts: Partial<Record<AgentStatus, number>>
  /** The zod schema the workflow's state must satisfy, if any; remote writes that break it are compensated. */
  schemaFor?: (workflowId: string) => ZodType | undefined
  /**
   * Set when several servers share the store (cluster mode). One server at a time writes each
   * workflow (it holds the writer lease); the others forward their peers' updates to it and relay
   * them once acknowledged. Versions other servers stored are applied with `applyRemote`/`catchUp`,
   * a commit that finds the head moved anyway (a lease race) catches up and renumbers, and
   * `exclusive` runs under the cluster-wide lock.
   */
  cluster?: {
    serverId: string
    lock: <T>(key: string, fn: () => Promise<T>) => Promise<T>
    /** Presence changes of this server's peers, for the other servers. */
    publishAwareness: (workflow: Workflow, update: Uint8Array) => void
    claimWriter: (workflowId: string) => Promise<string>
    releaseWriter: (workflowId: string) => Promise<void>
    forward: (to: string, forward: Forward) => void
    /** How long a forward waits for its acknowledgement before it is sent again (or taken over). */
    forwardTimeoutMs: number
    /** A commit found the version number taken (two servers wrote at once). */
    onRace: () => void
  }
}

/** Origin of presence updates relayed from other servers (not published back). */
const REMOTE_AWARENESS = Symbol('remote awareness')

/** The origin of updates another server already stored: relayed to peers, never persisted again. */
export class RemoteOrigin implements ChangeOrigin {
  readonly agentId: string
  readonly description: string
  constructor (record: Pick<VersionRecord, 'author' | 'description'>) {
    this.agentId = record.author
    this.description = record.description
  }
}

/** The origin of updates forwarded by another server for this one to store. */
class ForwardOrigin implements ChangeOrigin {
  readonly agentId: string
  private readonly item: ForwardedUpdate
  constructor (item: ForwardedUpdate) {
    this.agentId = item.author
    this.item = item
  }

  takeDescription = (): { description?: string, meta?: ChangeMeta } => ({ description: this.item.description, meta: this.item.meta })
}

/**
 * Yjs decodes each JSON value into an array grown by push, which reserves room for 17 entries
 * (about 150 bytes) to hold usually one: copied to its exact size, a loaded 1 KB workflow takes
 * about 5 KB less heap. Only the array's storage changes, never the content.
 */
const trimContent = (doc: Y.Doc): void => {
  for (const structs of doc.store.clients.values()) {
    for (const struct of structs) {
      if (struct instanceof Y.Item && struct.content instanceof Y.ContentAny) struct.content.arr = struct.content.arr.slice()
    }
  }
}

const prefixOps = (section: string, ops: Operation[]): Operation[] =>
  ops.map(op => ({ ...op, path: `/${section}${op.path}`, ...('from' in op ? { from: `/${section}${op.from}` } : {}) }) as Operation)

/** The description and tracing meta a writer announced for its next update. */
type Described = { description?: string, meta?: ChangeMeta }

interface Applying { origin: unknown, described: Described | undefined, entry: Pending | undefined }

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export class Workflow {
  readonly id: string
  readonly doc: Y.Doc
  /** Created on first use: most loaded workflows have no peer and need no presence. */
  private presence: awarenessProtocol.Awareness | null = null
  /** Peers and the awareness client ids each of them controls. */
  readonly peers = new Map<Peer, Set<number>>()
  private readonly opts: WorkflowOptions
  /** Meta as of the last cut window (ahead of the store while a write is in flight). */
  private meta: WorkflowMeta
  private txOps: Operation[] = []
  private txRuntimeOps: Operation[] = []
  private txConflicts: DetectedConflict[] = []
  /** The last state that passed the schema: what a compensation restores (null: no schema). */
  private lastValid: JsonObject | null
  private pending: Pending[] = []
  private flushTimer: ReturnType<typeof setImmediate> | null = null
  private chain: Promise<void> = Promise.resolve()
  /** A cut is queued in the chain (it takes every pending update when it runs). */
  private cutQueued = false
  /** Cluster mode: the state as of the last version, and whether remote versions came since. */
  private committedJson: JsonObject | null = null
  private remoteSinceCut = false
  /** Cluster mode: the server that stores this workflow's writes (null: ask before the next write). */
  private writer: string | null = null
  private forwardSeq = 0
  /** Forwards not acknowledged yet, by sequence number (in the order sent). */
  private readonly inflight = new Map<number, { batch: Pending[], to: string, sentAt: number }>()
  /** The newest version an acknowledgement named: flushed means the document reached it. */
  private ackedVersion = 0
  private settleWaiters: Array<() => void> = []
  /** The update being applied by applyAs: its origin, description, and the pending entry it became. */
  private applying: Applying | null = null
  private failed = false
  private destroyed = false

  private constructor (id: string, doc: Y.Doc, meta: WorkflowMeta, opts: WorkflowOptions) {
    this.id = id
    this.doc = doc
    this.meta = meta
    this.opts = opts
    // Kept only where it is used: a JSON copy of the state costs more heap than the state itself.
    this.lastValid = opts.schemaFor?.(id) === undefined ? null : readState(doc)
    if (opts.cluster !== undefined) this.committedJson = this.lastValid ?? readState(doc)
    stateRoot(doc).observeDeep(this.onStateEvents)
    for (const [section, name] of Object.entries(RUNTIME_ROOTS)) {
      doc.getMap(name).observeDeep(events => { this.txRuntimeOps = this.txRuntimeOps.concat(prefixOps(section, eventsToOps(events))) })
    }
    doc.getArray(EVENTS_ROOT).observe(event => { this.txRuntimeOps = this.txRuntimeOps.concat(prefixOps('events', eventsToOps([event]))) })
    doc.on('beforeObserverCalls', this.onBeforeObservers)
    doc.on('update', this.onDocUpdate)
  }

  /** Rebuilds the document from the newest keyframe plus the log after it. */
  static async load (id: string, opts: Omit<WorkflowOptions, never>): Promise<Workflow> {
    const stored = await opts.store.load(id)
    const doc = new Y.Doc({ gc: true })
    try {
      doc.transact(() => {
        if (stored.keyframe !== null) Y.applyUpdate(doc, stored.keyframe.state)
        for (const entry of stored.entries) for (const update of entry.updates) Y.applyUpdate(doc, update)
      })
    } catch (err) {
      doc.destroy()
      throw err
    }
    trimContent(doc)
    const wf = new Workflow(id, doc, stored.meta ?? emptyMeta(id), opts)
    if (opts.cluster !== undefined) wf.writer = await wf.claimWriter()
    return wf
  }

  /** The writer lease's holder; on a lease error this server writes (the store keeps that safe). */
  private async claimWriter (): Promise<string | null> {
    const cluster = this.opts.cluster
    if (cluster === undefined) return null
    try {
      return await cluster.claimWriter(this.id)
    } catch (err) {
      this.opts.log.warn('could not learn the writer; writing from this server', { workflowId: this.id, error: (err as Error).message })
      return cluster.serverId
    }
  }

  /** True unless another server writes this workflow (cluster mode). */
  get isWriter (): boolean {
    return this.opts.cluster === undefined || this.writer === this.opts.cluster.serverId
  }

  /** Cluster mode: this server's lease was lost; the next write asks who writes now. */
  writerLost (): void {
    this.writer = null
  }

  get awareness (): awarenessProtocol.Awareness {
    if (this.presence === null) {
      this.presence = new awarenessProtocol.Awareness(this.doc)
      this.presence.setLocalState(null)
      this.presence.on('update', this.onAwarenessUpdate)
    }
    return this.presence
  }

  /** Meta as of the newest version cut (the stored meta once `whenFlushed` resolves). */
  get currentMeta (): WorkflowMeta { return this.meta }

  /** Cluster mode: a presence update from a client of another server. */
  applyRemoteAwareness (update: Uint8Array): void {
    if (this.destroyed) return
    awarenessProtocol.applyAwarenessUpdate(this.awareness, update, REMOTE_AWARENESS)
  }

  /** The newest version cut so far (durable once `whenFlushed` resolves). */
  get head (): number { return this.meta.head }
  get forkOf (): WorkflowMeta['forkOf'] { return this.meta.forkOf }
  /** Bytes written for this workflow (what the quota counts). */
  get storedBytes (): number { return this.meta.bytes }

  addPeer (peer: Peer): void {
    this.peers.set(peer, new Set())
  }

  removePeer (peer: Peer): void {
    const clients = this.peers.get(peer)
    if (clients === undefined) return
    this.peers.delete(peer)
    if (clients.size > 0 && !this.destroyed && this.presence !== null) {
      awarenessProtocol.removeAwarenessStates(this.awareness, Array.from(clients), null)
    }
  }

  /** Applies a server-side change (restore, repair, resolution) as `origin`. */
  transact (fn: () => void, origin: ChangeOrigin): void {
    if (this.failed || this.destroyed) throw new AccordError('WORKFLOW_UNAVAILABLE', `workflow ${this.id} is not writable`)
    this.doc.transact(fn, origin)
  }

  /** Resolves once every update applied so far is durable (or the workflow failed). */
  async whenFlushed (maxRounds = 8): Promise<void> {
    // Updates keep arriving while a batch is written; wait a few rounds for a quiet moment so a
    // sync reply does not carry edits that are not stored yet, without starving under load.
    for (let round = 0; round < maxRounds; round++) {
      this.flushNow()
      await this.chain
      await this.untilSettled()
      if (this.pending.length === 0 || this.failed) return
    }
  }

  private get settled (): boolean {
    return (this.inflight.size === 0 && this.meta.head >= this.ackedVersion) || this.failed || this.destroyed
  }

  private settle (): void {
    if (!this.settled || this.settleWaiters.length === 0) return
    const waiters = this.settleWaiters
    this.settleWaiters = []
    for (const wake of waiters) wake()
  }

  /**
   * Cluster mode: waits until every forward is acknowledged and the document holds the versions
   * the acknowledgements named. A writer that does not answer is asked again or taken over, and a
   * version that does not arrive over the bus is read from the store.
   */
  private async untilSettled (): Promise<void> {
    const timeout = this.opts.cluster?.forwardTimeoutMs ?? 0
    while (!this.settled) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await new Promise<void>(resolve => {
        this.settleWaiters.push(resolve)
        timer = setTimeout(resolve, timeout)
      })
      clearTimeout(timer)
      if (this.settled) return
      await this.retryForwards()
      if (this.inflight.size === 0 && this.meta.head < this.ackedVersion) await this.catchUp()
    }
  }

  get isFailed (): boolean { return this.failed }

  /**
   * Applies an update a peer sent (the connection has decoded it and admitted the peer as a
   * writer), with the description and meta the peer announced for it, then checks it: a write
   * made while the workflow is paused is recorded, a write outside the peer's paths is reverted,
   * and when the state no longer satisfies the schema a compensating change restores the last
   * valid values (a Yjs update cannot be dropped: later updates depend on it). The write and its
   * compensation are persisted and broadcast together, so other peers never see the invalid state.
   * Throws InvalidMessageError for an update Yjs could not store again (the connection closes).
   */
  applyPeerUpdate (peer: Peer, update: Uint8Array, described?: Described): void {
    // A path-limited writer's change is checked against what was there before it.
    const before = peer.writePaths === null ? undefined : readState(this.doc)
    assertEncodableUpdate(update)
    const entry = this.applyAs(peer, described, () => { Y.applyUpdate(this.doc, update, peer) })
    if (entry !== undefined) this.checkPeerWrite(peer, entry, before)
  }

  /** Runs `fn` (which applies one update as `origin`) and returns the pending entry it became, if any. */
  private applyAs (origin: unknown, described: Described | undefined, fn: () => void): Pending | undefined {
    const applying: Applying = { origin, described, entry: undefined }
    this.applying = applying
    try {
      fn()
    } finally {
      this.applying = null
    }
    return applying.entry
  }

  private checkPeerWrite (peer: Peer, entry: Pending, before: JsonObject | undefined): void {
    if (entry.ops.length === 0 || this.failed) return
    const now = Date.now()
    const paths = Array.from(new Set(entry.ops.map(op => op.path)))
    if (isPaused(this.doc)) entry.violations.push({ kind: 'paused', agent: peer.agentId, paths, reverted: false, at: now })
    if (peer.writePaths !== null && before !== undefined) {
      const allowed = peer.writePaths
      const outside = paths.filter(path => !allowed.some(pattern => pathMatches(pattern, path)))
      if (outside.length > 0) {
        entry.violations.push({ kind: 'scope', agent: peer.agentId, paths: outside, reverted: true, at: now })
        this.compensate(entry, before, `reverted a change by ${peer.agentId} outside its paths`)
        return
      }
    }
    const schema = this.opts.schemaFor?.(this.id)
    if (schema === undefined) return
    const state = readState(this.doc)
    const result = schema.safeParse(state)
    if (result.success) {
      this.lastValid = state
      return
    }
    const issues = result.error.issues.map(i => ({ ...i, path: i.path.map(p => typeof p === 'symbol' ? String(p) : p) }))
    // Without a baseline to restore (the schema arrived without one) the write stays, reported.
    entry.violations.push({ kind: 'schema', agent: peer.agentId, paths: issues.map(i => toPointer(i.path)), issues, reverted: this.lastValid !== null, at: now })
    if (this.lastValid === null) return
    this.compensate(entry, this.lastValid, `reverted an invalid change by ${peer.agentId}`)
  }

  /** Writes `target` back as a server change glued to `entry` (stored and broadcast with it). */
  private compensate (entry: Pending, target: JsonObject, description: string): void {
    this.opts.log.warn('change reverted', { workflowId: this.id, description })
    const validator: ChangeOrigin = { agentId: 'accord:validator' }
    const compensation = this.applyAs(validator, { description }, () => {
      this.doc.transact(() => { setMapContents(stateRoot(this.doc), target) }, validator)
    })
    if (compensation !== undefined && compensation !== entry) compensation.compensates = true
  }

  /** Takes the current state as the known-good one (a schema was just registered). */
  resetValidationBaseline (): void {
    this.lastValid = readState(this.doc)
  }

  private readonly onStateEvents = (events: Array<Y.YEvent<any>>): void => {
    this.txOps = this.txOps.concat(eventsToOps(events))
  }

  private readonly onBeforeObservers = (tr: Y.Transaction): void => {
    const found = detectConflicts(this.doc, stateRoot(this.doc), tr)
    if (found.length > 0) this.txConflicts = this.txConflicts.concat(found)
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    const ops = this.txOps
    const runtimeOps = this.txRuntimeOps
    const conflicts = this.txConflicts
    this.txOps = []
    this.txRuntimeOps = []
    this.txConflicts = []
    if (this.failed) return
    if (origin instanceof RemoteOrigin) {
      // Stored by another server already: relay it at once, persist nothing.
      this.remoteSinceCut = true
      relay(this.peers.keys(), update, origin, origin.description)
      return
    }
    const applying = this.applying !== null && this.applying.origin === origin ? this.applying : null
    const described = applying !== null ? applying.described : (origin as ChangeOrigin | null)?.takeDescription?.()
    const entry: Pending = { update, origin, ops, runtimeOps, conflicts, violations: [], description: described?.description, meta: described?.meta }
    this.pending.push(entry)
    if (applying !== null) applying.entry = entry
    if (this.flushTimer === null) this.flushTimer = setImmediate(() => { this.flushNow() })
  }

  /**
   * Queues a cut of the current window. The cut runs when the write queue reaches it and takes
   * every update pending then, so a backlog becomes one bigger group commit, and the version
   * number is taken from the head as it is after every earlier write (and any remote version).
   */
  private flushNow (): void {
    if (this.flushTimer !== null) {
      clearImmediate(this.flushTimer)
      this.flushTimer = null
    }
    if (this.pending.length === 0 || this.failed || this.cutQueued) return
    this.cutQueued = true
    this.chain = this.chain.then(async () => {
      this.cutQueued = false
      if (this.pending.length === 0 || this.failed) return
      if (this.opts.cluster !== undefined && this.writer === null) this.writer = await this.claimWriter()
      if (!this.isWriter) {
        this.forwardPending()
        return
      }
      const batch = this.pending
      this.pending = []
      let commit: Cut
      try {
        commit = this.cut(batch)
      } catch (err) {
        this.fail(err as Error)
        return
      }
      return this.persist(batch, commit)
    }).catch((err: Error) => {
      // A link that throws must not break the queue: every later write would be skipped.
      this.cutQueued = false
      this.opts.log.error('write queue step failed', { workflowId: this.id, error: err.message })
      this.fail(err)
    })
  }

  /** Cuts the window into the next version and makes its meta current (synchronously). */
  private cut (batch: Pending[]): Cut {
    const previous = this.meta.deadline ?? null
    const c = cutVersion({
      id: this.id,
      doc: this.doc,
      meta: this.meta,
      batch,
      keyframeEvery: this.opts.keyframeEvery,
      quotaBytes: this.opts.quotaBytes,
      timeouts: this.opts.timeouts,
      diffFrom: this.remoteSinceCut ? this.committedJson : null
    })
    if (c.meta.deadline !== previous) runHooks(this.opts.hooks, this.opts.log, 'deadlineChanged', this, c.meta.deadline ?? null)
    this.meta = c.meta
    this.remoteSinceCut = false
    return c
  }

  /**
   * Cluster mode: applies a version another server stored. The next version in line is applied
   * from the message itself; after a gap the workflow catches up from the store.
   */
  applyRemote (remote: RemoteVersion): Promise<void> {
    return this.enqueue(async () => {
      if (remote.record.version <= this.meta.head || this.failed) return
      if (remote.record.version !== this.meta.head + 1) {
        await this.catchUpNow()
        return
      }
      this.applyRemoteVersions(remote.meta, [remote.record], remote.updates)
    })
  }

  /** Cluster mode: brings the document up to the store's head (after a missed notification). */
  catchUp (): Promise<void> {
    return this.enqueue(() => this.catchUpNow())
  }

  private async catchUpNow (): Promise<void> {
    const { store } = this.opts
    const meta = await store.getMeta(this.id)
    if (meta === null || meta.head <= this.meta.head || this.failed) return
    const records = await store.versionsAfter(this.id, this.meta.head, meta.head - this.meta.head)
    const replay = await store.replay(this.id, meta.head)
    const updates: Uint8Array[] = []
    if (replay.keyframe !== null && replay.keyframe.version > this.meta.head) updates.push(replay.keyframe.state)
    for (const entry of replay.entries) if (entry.version > this.meta.head) updates.push(...entry.updates)
    this.applyRemoteVersions(meta, records.filter(r => r.version <= meta.head), updates)
  }

  private applyRemoteVersions (meta: WorkflowMeta, records: VersionRecord[], updates: Uint8Array[]): void {
    const last = records[records.length - 1]
    const origin = new RemoteOrigin(last ?? { author: 'accord', description: 'catch-up' })
    this.doc.transact(() => { for (const update of updates) Y.applyUpdate(this.doc, update) }, origin)
    if (this.committedJson !== null) {
      try {
        let json = this.committedJson
        for (const record of records) json = jsonpatch.applyPatch(json, record.changes as Operation[], false, false).newDocument
        this.committedJson = json
      } catch (err) {
        this.opts.log.warn('remote changes did not apply to the last state; diffing from the current one', { workflowId: this.id, error: (err as Error).message })
        this.committedJson = readState(this.doc)
      }
    }
    const previous = this.meta.deadline ?? null
    this.meta = meta
    if ((meta.deadline ?? null) !== previous) runHooks(this.opts.hooks, this.opts.log, 'deadlineChanged', this, meta.deadline ?? null)
    for (const record of records) runHooks(this.opts.hooks, this.opts.log, 'afterVersion', { workflow: this, record, conflicts: [], local: false, seconds: 0, updates: [], bytes: 0 })
    this.settle()
  }

  /** Cluster mode, not the writer: sends what is pending to the writer (relayed here once stored). */
  private forwardPending (): void {
    const batch = this.pending
    this.pending = []
    const seq = ++this.forwardSeq
    this.inflight.set(seq, { batch, to: this.writer as string, sentAt: Date.now() })
    this.sendForward(seq)
  }

  private sendForward (seq: number): void {
    const cluster = this.opts.cluster
    const entry = this.inflight.get(seq)
    if (cluster === undefined || entry === undefined) return
    cluster.forward(entry.to, {
      workflowId: this.id,
      from: cluster.serverId,
      seq,
      updates: entry.batch.map(p => ({
        update: p.update,
        author: originAgent(p.origin),
        description: p.description,
        meta: p.meta,
        violations: p.violations,
        compensates: p.compensates === true
      }))
    })
  }

  /** Cluster mode: the writer stored forward `seq` in `version`; this server's peers get it now. */
  acknowledged (seq: number, version: number): void {
    const entry = this.inflight.get(seq)
    if (entry === undefined || this.destroyed) return
    this.inflight.delete(seq)
    this.ackedVersion = Math.max(this.ackedVersion, version)
    deliver(this.peers.keys(), this.outgoing(entry.batch))
    this.settle()
  }

  /**
   * Cluster mode: forwards unacknowledged for longer than the timeout go again, to whoever holds
   * the lease now; if nobody does, this server takes the lease and stores them itself.
   */
  async retryForwards (): Promise<void> {
    const cluster = this.opts.cluster
    if (cluster === undefined || this.inflight.size === 0 || this.failed || this.destroyed) return
    const now = Date.now()
    const stale = Array.from(this.inflight).filter(([, e]) => now - e.sentAt >= cluster.forwardTimeoutMs)
    if (stale.length === 0) return
    this.writer = await this.claimWriter()
    if (this.isWriter) {
      this.opts.log.warn('taking over as writer', { workflowId: this.id, forwards: this.inflight.size })
      await this.enqueue(async () => {
        // The map iterates in the order sent: the batches keep their order before newer writes.
        const batches = Array.from(this.inflight.values()).flatMap(e => e.batch)
        this.inflight.clear()
        this.pending = batches.concat(this.pending)
      })
      this.flushNow()
      this.settle()
      return
    }
    for (const [seq, entry] of stale) {
      entry.to = this.writer as string
      entry.sentAt = now
      this.sendForward(seq)
    }
  }

  /**
   * Cluster mode, as the writer: applies updates another server forwarded and resolves with the
   * version that holds them once it is stored (the acknowledgement the forwarder waits for).
   */
  async applyForwarded (forward: Forward): Promise<number> {
    if (this.failed || this.destroyed) throw new AccordError('WORKFLOW_UNAVAILABLE', `workflow ${this.id} is not writable`)
    for (const item of forward.updates) {
      const origin = new ForwardOrigin(item)
      const entry = this.applyAs(origin, origin.takeDescription(), () => { Y.applyUpdate(this.doc, item.update, origin) })
      if (entry !== undefined) {
        entry.violations = item.violations
        if (item.compensates) entry.compensates = true
      }
    }
    await this.enqueue(async () => {})
    // No longer the writer (the lease moved): they were forwarded on; wait for that writer.
    await this.untilSettled()
    if (this.failed) throw new AccordError('WORKFLOW_UNAVAILABLE', `workflow ${this.id} is not writable`)
    return this.meta.head
  }

  /** Runs `fn` under the cluster-wide lock for `key` after catching up (task claims); plain call otherwise. */
  async exclusive<T> (key: string, fn: () => Promise<T>): Promise<T> {
    const cluster = this.opts.cluster
    if (cluster === undefined) return fn()
    return cluster.lock(`${this.id}:${key}`, async () => {
      await this.catchUp()
      return fn()
    })
  }

  private async persist (batch: Pending[], commit: Cut): Promise<void> {
    if (this.failed) return
    const { store } = this.opts
    const started = performance.now()
    for (let moved = 0; ; moved++) {
      try {
        const c = commit
        const updates = batch.map(p => p.update)
        await this.withRetry(() => store.commit(this.id, {
          meta: c.meta,
          record: c.record,
          updates,
          keyframe: c.keyframe,
          conflicts: c.conflicts,
          violations: c.violations
        }))
        if (this.committedJson !== null) this.committedJson = c.state
        break
      } catch (err) {
        if (!(err instanceof HeadMovedError) || this.opts.cluster === undefined || moved >= 50 || this.failed) {
          this.fail(err as Error)
          return
        }
        // Another server stored this version number first: take its versions, then renumber ours
        // (with whatever arrived meanwhile, which is in the document too).
        this.opts.cluster.onRace()
        try {
          this.meta = { ...this.meta, head: commit.record.version - 1 }
          await this.catchUpNow()
          batch = batch.concat(this.pending)
          this.pending = []
          commit = this.cut(batch)
        } catch (retryErr) {
          this.fail(retryErr as Error)
          return
        }
      }
    }
    deliver(this.peers.keys(), this.outgoing(batch))
    runHooks(this.opts.hooks, this.opts.log, 'afterVersion', {
      workflow: this,
      record: commit.record,
      conflicts: commit.conflicts,
      local: true,
      seconds: (performance.now() - started) / 1000,
      updates: batch.map(p => p.update),
      bytes: batch.reduce((n, p) => n + p.update.length, 0)
    })
    if (commit.keyframe !== undefined) runHooks(this.opts.hooks, this.opts.log, 'afterKeyframe', this)
  }

  /** What each peer gets of a stored batch (nobody gets back their own update). */
  private outgoing (batch: Pending[]): Outgoing[] {
    const items: Outgoing[] = []
    for (let i = 0; i < batch.length; i++) {
      const { update, origin, description } = batch[i] as Pending
      const next = batch[i + 1]
      if (next?.compensates === true) {
        // Everyone but the writer gets the write and its undoing as one update; the writer, who
        // has the write already, gets the undoing.
        i++
        items.push({ update: Y.mergeUpdates([update, next.update]), origin, description, skip: [origin] })
        items.push({ update: next.update, origin: next.origin, description: next.description, skip: this.otherPeers(origin) })
      } else {
        items.push({ update, origin, description, skip: [origin] })
      }
    }
    return items
  }

  private otherPeers (origin: unknown): Peer[] {
    return Array.from(this.peers.keys()).filter(p => p !== origin)
  }

  /** Runs `task` in this workflow's write queue (after every write queued so far). */
  enqueue<T> (task: (meta: WorkflowMeta) => Promise<T>): Promise<T> {
    this.flushNow()
    const run = this.chain.then(() => task(this.meta))
    this.chain = run.then(() => {}, () => {})
    return run
  }

  private async withRetry (write: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write()
      } catch (err) {
        if (attempt >= this.opts.writeAttempts || this.destroyed || err instanceof HeadMovedError) throw err
        this.opts.log.warn('write failed, retrying', { workflowId: this.id, attempt, error: (err as Error).message })
        await sleep(Math.min(1000, 25 * 2 ** attempt))
      }
    }
  }

  private fail (error: Error): void {
    if (this.failed) return
    this.failed = true
    this.pending = []
    this.settle()
    this.opts.log.error('workflow stopped: storage write failed', { workflowId: this.id, error: error.message, code: (error as AccordError).code })
    const code = error instanceof QuotaExceededError ? CloseCodes.quotaExceeded : CloseCodes.storageFailure
    for (const peer of Array.from(this.peers.keys())) peer.close(code, error.message)
    this.opts.onFailure(this, error)
  }

  broadcast (message: Uint8Array, except?: unknown): void {
    for (const peer of this.peers.keys()) if (peer !== except) peer.send(message)
  }

  private readonly onAwarenessUpdate = (
    { added, updated, removed }: { added: number[], updated: number[], removed: number[] },
    origin: unknown
  ): void => {
    const owned = this.peers.get(origin as Peer)
    if (owned !== undefined) {
      for (const c of added) owned.add(c)
      for (const c of removed) owned.delete(c)
    }
    const changed = added.concat(updated, removed)
    if (changed.length === 0) return
    this.broadcast(encodeAwareness(this.awareness, changed))
    if (origin !== REMOTE_AWARENESS) this.opts.cluster?.publishAwareness(this, awarenessProtocol.encodeAwarenessUpdate(this.awareness, changed))
  }

  /** Writes what is pending, then releases the doc. Safe to call twice. */
  async close (): Promise<void> {
    if (this.destroyed) return
    await this.whenFlushed(Number.POSITIVE_INFINITY).catch(() => {})
    this.destroy()
  }

  /** Releases memory and timers immediately, without writing. Safe to call twice. */
  destroy (): void {
    if (this.destroyed) return
    this.destroyed = true
    this.settle()
    if (this.isWriter && this.opts.cluster !== undefined) {
      this.opts.cluster.releaseWriter(this.id).catch((err: Error) => { this.opts.log.warn('releasing the writer lease failed', { workflowId: this.id, error: err.message }) })
    }
    if (this.flushTimer !== null) clearImmediate(this.flushTimer)
    this.flushTimer = null
    this.pending = []
    this.doc.off('update', this.onDocUpdate)
    this.doc.off('beforeObserverCalls', this.onBeforeObservers)
    if (this.presence !== null) {
      this.presence.off('update', this.onAwarenessUpdate)
      this.presence.destroy()
    }
    this.doc.destroy()
    this.peers.clear()
  }
}
