/**
 * One loaded workflow: its live Y.Doc (gc on), awareness, connected peers and write queue.
 *
 * Updates are applied to the doc as they arrive, collected per event-loop turn, written to the
 * store as one batch (group commit; each workflow has its own queue) and only then broadcast.
 * If a write keeps failing, the workflow stops: peers are closed with 4500 and it is unloaded,
 * so nothing unstored is ever acknowledged; clients re-sync their local state on reconnect.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import { CloseCodes, type CloseCode } from '../src/close-codes.ts'
import { MessageType } from '../src/protocol.ts'
import type { Logger } from './log.ts'
import type { Store, WorkflowMeta } from './store/store.ts'

/** What a workflow needs from a connection. */
export interface Peer {
  readonly id: number
  send: (message: Uint8Array) => void
  close: (code: CloseCode, detail?: string) => void
}

export interface WorkflowOptions {
  store: Store
  log: Logger
  /** Log entries after which the next write compacts into a keyframe. */
  compactEvery: number
  /** Attempts per write before the workflow is failed (transient errors are retried). */
  writeAttempts: number
  /** Called once when a write failed for good; the owner unloads the workflow. */
  onFailure: (workflow: Workflow, error: Error) => void
}

interface Pending {
  update: Uint8Array
  origin: unknown
}

const encodeSyncUpdate = (update: Uint8Array): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MessageType.sync)
  syncProtocol.writeUpdate(enc, update)
  return encoding.toUint8Array(enc)
}

export const encodeAwareness = (awareness: awarenessProtocol.Awareness, clients: number[]): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MessageType.awareness)
  encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(awareness, clients))
  return encoding.toUint8Array(enc)
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export class Workflow {
  readonly id: string
  readonly doc: Y.Doc
  readonly awareness: awarenessProtocol.Awareness
  /** Peers and the awareness client ids each of them controls. */
  readonly peers = new Map<Peer, Set<number>>()
  private readonly opts: WorkflowOptions
  private meta: WorkflowMeta
  private logCount: number
  private pending: Pending[] = []
  private flushTimer: ReturnType<typeof setImmediate> | null = null
  private chain: Promise<void> = Promise.resolve()
  private failed = false
  private destroyed = false

  private constructor (id: string, doc: Y.Doc, meta: WorkflowMeta, logCount: number, opts: WorkflowOptions) {
    this.id = id
    this.doc = doc
    this.meta = meta
    this.logCount = logCount
    this.opts = opts
    this.awareness = new awarenessProtocol.Awareness(doc)
    this.awareness.setLocalState(null)
    this.awareness.on('update', this.onAwarenessUpdate)
    doc.on('update', this.onDocUpdate)
  }

  /** Rebuilds the document from the newest keyframe plus the log after it. */
  static async load (id: string, opts: WorkflowOptions): Promise<Workflow> {
    const stored = await opts.store.load(id)
    const doc = new Y.Doc({ gc: true })
    try {
      doc.transact(() => {
        if (stored.keyframe !== null) Y.applyUpdate(doc, stored.keyframe)
        for (const update of stored.updates) Y.applyUpdate(doc, update)
      })
    } catch (err) {
      doc.destroy()
      throw err
    }
    const now = Date.now()
    const meta = stored.meta ?? { id, createdAt: now, updatedAt: now, lastSeq: 0 }
    return new Workflow(id, doc, meta, stored.updates.length, opts)
  }

  get connectionCount (): number { return this.peers.size }

  addPeer (peer: Peer): void {
    this.peers.set(peer, new Set())
  }

  removePeer (peer: Peer): void {
    const clients = this.peers.get(peer)
    if (clients === undefined) return
    this.peers.delete(peer)
    if (clients.size > 0 && !this.destroyed) {
      awarenessProtocol.removeAwarenessStates(this.awareness, Array.from(clients), null)
    }
  }

  /** Resolves once every update applied so far is durable (or the workflow failed). */
  async whenFlushed (maxRounds = 8): Promise<void> {
    // Updates keep arriving while a batch is written; wait a few rounds for a quiet moment so a
    // sync reply does not carry edits that are not stored yet, without starving under load.
    for (let round = 0; round < maxRounds; round++) {
      this.flushNow()
      await this.chain
      if (this.pending.length === 0 || this.failed) return
    }
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (this.failed) return
    this.pending.push({ update, origin })
    if (this.flushTimer === null) this.flushTimer = setImmediate(() => { this.flushNow() })
  }

  private flushNow (): void {
    if (this.flushTimer !== null) {
      clearImmediate(this.flushTimer)
      this.flushTimer = null
    }
    if (this.pending.length === 0) return
    const batch = this.pending
    this.pending = []
    this.chain = this.chain.then(() => this.persist(batch))
  }

  private async persist (batch: Pending[]): Promise<void> {
    if (this.failed) return
    const { store, compactEvery } = this.opts
    const updates = batch.map(p => p.update)
    try {
      if (this.logCount + updates.length > compactEvery) {
        // The live doc already is "all updates applied": its encoding is the keyframe.
        const seq = this.meta.lastSeq + 1
        const meta = { ...this.meta, updatedAt: Date.now(), lastSeq: seq }
        const state = Y.encodeStateAsUpdate(this.doc)
        await this.withRetry(() => store.compact(this.id, seq, state, meta))
        this.meta = meta
        this.logCount = 0
      } else {
        const first = this.meta.lastSeq + 1
        const meta = { ...this.meta, updatedAt: Date.now(), lastSeq: this.meta.lastSeq + updates.length }
        await this.withRetry(() => store.append(this.id, first, updates, meta))
        this.meta = meta
        this.logCount += updates.length
      }
    } catch (err) {
      this.fail(err as Error)
      return
    }
    for (const { update, origin } of batch) this.broadcast(encodeSyncUpdate(update), origin)
  }

  private async withRetry (write: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write()
      } catch (err) {
        if (attempt >= this.opts.writeAttempts || this.destroyed) throw err
        this.opts.log.warn('write failed, retrying', { workflowId: this.id, attempt, error: (err as Error).message })
        await sleep(Math.min(1000, 25 * 2 ** attempt))
      }
    }
  }

  private fail (error: Error): void {
    if (this.failed) return
    this.failed = true
    this.pending = []
    this.opts.log.error('workflow stopped: storage write failed', { workflowId: this.id, error: error.message })
    for (const peer of Array.from(this.peers.keys())) peer.close(CloseCodes.storageFailure, error.message)
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
    if (changed.length > 0) this.broadcast(encodeAwareness(this.awareness, changed))
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
    if (this.flushTimer !== null) clearImmediate(this.flushTimer)
    this.flushTimer = null
    this.pending = []
    this.doc.off('update', this.onDocUpdate)
    this.awareness.off('update', this.onAwarenessUpdate)
    this.awareness.destroy()
    this.doc.destroy()
    this.peers.clear()
  }
}
