/**
 * One loaded workflow: its live Y.Doc (gc on), its peers and presence (presence.ts) and its
 * write queue.
 *
 * Updates are applied to the doc as they arrive (a peer's are checked, write-checks.ts) and
 * collected per event-loop turn (a flush window). Each window becomes one version
 * (version-cut.ts): its updates, a version record and every `keyframeEvery` versions a keyframe
 * are written as one atomic batch (group commit; each workflow has its own queue) and only then
 * broadcast (fanout.ts) and handed to the commit hooks (commit-hooks.ts). If a write keeps
 * failing, the workflow stops: peers are closed with 4500 and it is unloaded, so nothing
 * unstored is ever acknowledged; clients re-sync on reconnect. Whether a window is committed
 * here or by another server sharing the store is the workflow's writer's call (writer.ts).
 *
 *   const wf = await Workflow.load(id, options)
 *   wf.addPeer(connection); wf.applyPeerUpdate(connection, update, described)
 *   wf.transact(() => { ... }, { agentId: 'accord' }, { description: 'restored from v3' })
 *   await wf.whenFlushed(); await wf.close()
 */
import * as Y from 'yjs'
import type * as awarenessProtocol from 'y-protocols/awareness'
import type { ZodType } from 'zod'
import { CloseCodes } from '../../src/model/close-codes.ts'
import { AccordError, HeadMovedError } from '../../src/model/errors.ts'
import { readState, setMapContents, stateRoot } from '../../src/model/json-yjs.ts'
import type { AgentStatus } from '../../src/model/runtime.ts'
import type { VersionRecord } from '../../src/model/schema.ts'
import type { Store, WorkflowMeta } from '../../src/store/store.ts'
import type { Logger } from '../ops/log.ts'
import { runHooks, type CommitHook } from './commit-hooks.ts'
import type { ChangeOrigin, Described, Peer } from './contracts.ts'
import { deliverBatch, relay } from './fanout.ts'
import { loadDoc } from './load-doc.ts'
import { PendingWindow } from './pending-window.ts'
import { Presence } from './presence.ts'
import { TransactionChanges } from './tx-changes.ts'
import { assertEncodableUpdate } from './update-check.ts'
import { QuotaExceededError, cutVersion, type Cut, type Pending } from './version-cut.ts'
import { WriteChecks, type Compensation } from './write-checks.ts'
import { LOCAL_WRITER, type WorkflowWriter, type WriterFactory, type WriterHost } from './writer.ts'

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
   * Who commits the workflow's writes (writer.ts). Absent: this server, the only one on its
   * store. Several servers on one store: the cluster's leased writer (server/cluster/cluster.ts).
   */
  writer?: WriterFactory
}

/** The origin of updates stored already (by another server): relayed to peers, never persisted again. */
class StoredOrigin implements ChangeOrigin {
  readonly agentId: string
  readonly description: string
  constructor (record: Pick<VersionRecord, 'author' | 'description'>) {
    this.agentId = record.author
    this.description = record.description
  }
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export class Workflow {
  readonly id: string
  readonly doc: Y.Doc
  private readonly presence: Presence
  private readonly changes: TransactionChanges
  private readonly checks: WriteChecks
  /** Set once at load (LOCAL_WRITER until then: nothing writes before load returns). */
  private writer: WorkflowWriter = LOCAL_WRITER
  private readonly opts: WorkflowOptions
  /** Meta as of the last cut window (ahead of the store while a write is in flight). */
  private meta: WorkflowMeta
  /** Applied, not cut yet. */
  private readonly pending = new PendingWindow()
  private flushTimer: ReturnType<typeof setImmediate> | null = null
  private chain: Promise<void> = Promise.resolve()
  /** A cut is queued in the chain (it takes every pending update when it runs). */
  private cutQueued = false
  /** Whether the last applyStored changed the document. */
  private storedChanged = false
  private failed = false
  private destroyed = false

  private constructor (id: string, doc: Y.Doc, meta: WorkflowMeta, opts: WorkflowOptions) {
    this.id = id
    this.doc = doc
    this.meta = meta
    this.opts = opts
    this.checks = new WriteChecks(id, doc, opts.schemaFor)
    this.changes = new TransactionChanges(doc)
    this.presence = new Presence(doc, (awareness, clients, origin) => { this.writer.presenceChanged(awareness, clients, origin) })
    doc.on('update', this.onDocUpdate)
  }

  /** Rebuilds the document from the newest keyframe plus the log after it (load-doc.ts). */
  static async load (id: string, opts: WorkflowOptions): Promise<Workflow> {
    const { doc, meta } = await loadDoc(opts.store, id)
    const wf = new Workflow(id, doc, meta, opts)
    if (opts.writer !== undefined) {
      try {
        wf.writer = await opts.writer(wf.host(), wf.checks.baseline ?? readState(doc))
      } catch (err) {
        wf.destroy()
        throw err
      }
    }
    return wf
  }

  /** True unless another server writes this workflow. */
  get isWriter (): boolean { return this.writer.isWriter }

  get awareness (): awarenessProtocol.Awareness { return this.presence.awareness }

  /** Peers and the awareness client ids each of them controls. */
  get peers (): Map<Peer, Set<number>> { return this.presence.peers }

  /** Meta as of the newest version cut (the stored meta once `whenFlushed` resolves). */
  get currentMeta (): WorkflowMeta { return this.meta }

  /** The newest version cut so far (durable once `whenFlushed` resolves). */
  get head (): number { return this.meta.head }
  get forkOf (): WorkflowMeta['forkOf'] { return this.meta.forkOf }
  /** Bytes written for this workflow (what the quota counts). */
  get storedBytes (): number { return this.meta.bytes }
  get isFailed (): boolean { return this.failed }

  addPeer (peer: Peer): void {
    this.presence.addPeer(peer)
  }

  removePeer (peer: Peer): void {
    this.presence.removePeer(peer)
  }

  /** Applies a server-side change (restore, repair, resolution) as `origin`, recorded as `described`. */
  transact (fn: () => void, origin: ChangeOrigin, described?: Described): void {
    if (this.failed || this.destroyed) throw new AccordError('WORKFLOW_UNAVAILABLE', `workflow ${this.id} is not writable`)
    this.pending.applyAs(origin, described, () => { this.doc.transact(fn, origin) })
  }

  /** Runs `fn` alone for `key` (task claims): across servers under the cluster lock, after catching up. */
  exclusive<T> (key: string, fn: () => Promise<T>): Promise<T> {
    return this.writer.exclusive(key, fn)
  }

  /** Resolves once every update applied so far is durable (or the workflow failed). */
  async whenFlushed (maxRounds = 8): Promise<void> {
    // Updates keep arriving while a batch is written; wait a few rounds for a quiet moment so a
    // sync reply does not carry edits that are not stored yet, without starving under load.
    for (let round = 0; round < maxRounds; round++) {
      this.flushNow()
      await this.chain
      await this.writer.settled()
      if (this.pending.length === 0 || this.failed) return
    }
  }

  /**
   * Applies an update a peer sent (the connection has decoded it and admitted the peer as a
   * writer), with the description and meta the peer announced for it, then checks it
   * (write-checks.ts): a refused write gets a compensating change, persisted and broadcast
   * together with it, so other peers never see the invalid state.
   * Throws InvalidMessageError for an update Yjs could not store again (the connection closes).
   */
  applyPeerUpdate (peer: Peer, update: Uint8Array, described?: Described): void {
    // A path-limited writer's change is checked against what was there before it.
    const before = this.checks.before(peer)
    assertEncodableUpdate(update)
    const entry = this.pending.applyAs(peer, described, () => { Y.applyUpdate(this.doc, update, peer) })
    if (entry === undefined || entry.ops.length === 0 || this.failed) return
    const fix = this.checks.check(peer, entry, before)
    if (fix !== null) this.compensate(entry, fix)
  }

  /** Writes `target` back as a server change glued to `entry` (stored and broadcast with it). */
  private compensate (entry: Pending, { target, description }: Compensation): void {
    this.opts.log.warn('change reverted', { workflowId: this.id, description })
    const validator: ChangeOrigin = { agentId: 'accord:validator' }
    const compensation = this.pending.applyAs(validator, { description }, () => {
      this.doc.transact(() => { setMapContents(stateRoot(this.doc), target) }, validator)
    })
    if (compensation !== undefined && compensation !== entry) compensation.compensates = true
  }

  /** Takes the current state as the known-good one (a schema was just registered). */
  resetValidationBaseline (): void {
    this.checks.reset()
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    const changes = this.changes.take()
    if (this.failed) return
    if (origin instanceof StoredOrigin) {
      // Stored already: relay it at once, persist nothing.
      this.storedChanged = true
      relay(this.presence.peers.keys(), update, origin, origin.description)
      return
    }
    this.pending.push(update, origin, changes)
    if (this.flushTimer === null) this.flushTimer = setImmediate(() => { this.flushNow() })
  }

  /**
   * Queues a cut of the current window. The cut runs when the write queue reaches it and takes
   * every update pending then, so a backlog becomes one bigger group commit, and the version
   * number is taken from the head as it is after every earlier write (and any version stored
   * elsewhere). When another server writes the workflow, the window goes to it instead.
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
      const here = this.writer.writesHere()
      if (!(typeof here === 'boolean' ? here : await here)) {
        this.writer.forward(this.pending.take())
        return
      }
      const window = this.pending.take()
      let commit: Cut
      try {
        commit = this.cut(window)
      } catch (err) {
        this.fail(err as Error)
        return
      }
      return this.persist(window, commit)
    }).catch((err: Error) => {
      // A link that throws must not break the queue: every later write would be skipped.
      this.cutQueued = false
      this.opts.log.error('write queue step failed', { workflowId: this.id, error: err.message })
      this.fail(err)
    })
  }

  /** Cuts the window into the next version and makes its meta current (synchronously). */
  private cut (batch: Pending[]): Cut {
    const c = cutVersion({
      id: this.id,
      doc: this.doc,
      meta: this.meta,
      batch,
      keyframeEvery: this.opts.keyframeEvery,
      quotaBytes: this.opts.quotaBytes,
      timeouts: this.opts.timeouts,
      diffFrom: this.writer.diffBase()
    })
    this.setMeta(c.meta)
    return c
  }

  /** Makes `meta` current; a moved lifecycle deadline goes to the hooks. */
  private setMeta (meta: WorkflowMeta): void {
    const previous = this.meta.deadline ?? null
    this.meta = meta
    if ((meta.deadline ?? null) !== previous) runHooks(this.opts.hooks, this.opts.log, 'deadlineChanged', this, meta.deadline ?? null)
  }

  private async persist (batch: Pending[], commit: Cut): Promise<void> {
    if (this.failed) return
    const { store } = this.opts
    const started = performance.now()
    let updates = batch.map(p => p.update)
    for (let moved = 0; ; moved++) {
      try {
        const c = commit
        await this.withRetry(() => store.commit(this.id, {
          meta: c.meta,
          record: c.record,
          updates,
          keyframe: c.keyframe,
          conflicts: c.conflicts,
          violations: c.violations
        }))
        this.writer.committed(c.state)
        break
      } catch (err) {
        if (!(err instanceof HeadMovedError) || moved >= 50 || this.failed) {
          this.fail(err as Error)
          return
        }
        // Another server stored this version number first: the writer takes its versions, then
        // ours are renumbered (with whatever arrived meanwhile, which is in the document too).
        try {
          this.meta = { ...this.meta, head: commit.record.version - 1 }
          if (!await this.writer.onHeadMoved()) {
            this.fail(err)
            return
          }
          batch = batch.concat(this.pending.take())
          updates = batch.map(p => p.update)
          commit = this.cut(batch)
        } catch (retryErr) {
          this.fail(retryErr as Error)
          return
        }
      }
    }
    deliverBatch(this.presence.peers, batch)
    runHooks(this.opts.hooks, this.opts.log, 'afterVersion', {
      workflow: this,
      record: commit.record,
      conflicts: commit.conflicts,
      local: true,
      seconds: (performance.now() - started) / 1000,
      updates,
      bytes: updates.reduce((n, u) => n + u.length, 0)
    })
    if (commit.keyframe !== undefined) runHooks(this.opts.hooks, this.opts.log, 'afterKeyframe', this)
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
    this.pending.clear()
    this.writer.close()
    this.opts.log.error('workflow stopped: storage write failed', { workflowId: this.id, error: error.message, code: (error as AccordError).code })
    const code = error instanceof QuotaExceededError ? CloseCodes.quotaExceeded : CloseCodes.storageFailure
    for (const peer of Array.from(this.presence.peers.keys())) peer.close(code, error.message)
    this.opts.onFailure(this, error)
  }

  /** What the writer may use of this workflow (writer.ts). */
  private host (): WriterHost {
    const presence = this.presence
    const wf = this
    return {
      id: this.id,
      doc: this.doc,
      get awareness () { return presence.awareness },
      get head () { return wf.meta.head },
      get peers () { return presence.peers.size },
      get isFailed () { return wf.failed },
      enqueue: task => this.enqueue(task),
      applyAs: (origin, described, fn) => this.pending.applyAs(origin, described, fn),
      requeue: batch => {
        this.pending.unshift(batch)
        this.flushNow()
      },
      deliver: batch => { deliverBatch(presence.peers, batch) },
      applyStored: (updates, by) => {
        this.storedChanged = false
        this.doc.transact(() => { for (const update of updates) Y.applyUpdate(this.doc, update) }, new StoredOrigin(by))
        return this.storedChanged
      },
      advance: (meta, records) => {
        this.setMeta(meta)
        for (const record of records) runHooks(this.opts.hooks, this.opts.log, 'afterVersion', { workflow: this, record, conflicts: [], local: false, seconds: 0, updates: [], bytes: 0 })
      }
    }
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
    this.writer.close()
    if (this.flushTimer !== null) clearImmediate(this.flushTimer)
    this.flushTimer = null
    this.pending.clear()
    this.doc.off('update', this.onDocUpdate)
    this.changes.destroy()
    this.presence.destroy()
    this.doc.destroy()
  }
}
