/**
 * Who commits a workflow's writes: the one seam between a loaded workflow (workflow.ts) and the
 * cluster single-writer protocol. The workflow runs its write queue (collect a window, cut it,
 * store it, broadcast) and asks its writer at the few points where several servers on one store
 * would differ: before a cut (commit here, or hand the window to the server that writes?), when
 * a commit finds its version number taken, while waiting for writes to be durable, for
 * cluster-wide exclusive sections, and for presence changes other servers should see.
 *
 * Two implementations: LOCAL_WRITER (this file: the only server on its store always writes,
 * `exclusive` is a plain call, nothing leaves the process) and the leased writer
 * (server/cluster/leased-writer.ts: a writer lease over the bus, forwards, acknowledgements,
 * takeover, versions stored elsewhere, catch-up). A workflow gets one through
 * `WorkflowOptions.writer`, a factory called once when the workflow loads:
 *
 *   Workflow.load(id, { ...opts })                                   // LOCAL_WRITER
 *   Workflow.load(id, { ...opts, writer: cluster.writer })           // a leased writer per workflow
 *
 * The writer drives the workflow only through the WriterHost it is given (never workflow.ts
 * itself, so this file and the cluster import no part of the workflow: no cycles).
 */
import type * as Y from 'yjs'
import type { Awareness } from 'y-protocols/awareness'
import type { JsonObject } from '../../src/model/json.ts'
import type { VersionRecord } from '../../src/model/schema.ts'
import type { WorkflowMeta } from '../../src/store/store.ts'
import type { Described } from './contracts.ts'
import type { Pending } from './version-cut.ts'

export interface WorkflowWriter {
  /** This server commits the workflow's writes (the only server, or the lease holder). */
  readonly isWriter: boolean
  /**
   * Asked in the write queue before each cut: true to cut and commit the pending window here;
   * false to hand it to `forward` instead. May wait (to learn who holds the lease).
   */
  writesHere: () => boolean | Promise<boolean>
  /** Takes a window another server is to store (it reaches this server's peers once acknowledged). */
  forward: (batch: Pending[]) => void
  /**
   * The state to diff the next cut's changes from, or null to use the window's own ops (no
   * version stored elsewhere was applied since the last cut). Called once per cut.
   */
  diffBase: () => JsonObject | null
  /** A version cut here was stored; `state` is the state as of it. */
  committed: (state: JsonObject) => void
  /**
   * A commit found its version number taken (the head was rewound to before it): resolves true
   * once the versions stored first were applied, so the window is renumbered and committed
   * again; false when that cannot happen (the workflow then fails).
   */
  onHeadMoved: () => Promise<boolean>
  /** Resolves once everything handed to `forward` is stored and the document holds it. */
  settled: () => Promise<void>
  /** Runs `fn` alone for `key` (task claims): under a cluster-wide lock, after catching up. */
  exclusive: <T>(key: string, fn: () => Promise<T>) => Promise<T>
  /** Presence changed on this server (`origin`: the peer, or whoever applied the update). */
  presenceChanged: (awareness: Awareness, clients: number[], origin: unknown) => void
  /** The workflow stopped (failed or destroyed): wake waiters, give up the lease. Idempotent. */
  close: () => void
}

/** What a writer may use of its workflow (the workflow builds one for its writer). */
export interface WriterHost {
  readonly id: string
  readonly doc: Y.Doc
  readonly awareness: Awareness
  /** The newest version cut here or applied from elsewhere. */
  readonly head: number
  /** Clients connected to this workflow on this server (WebSocket peers). */
  readonly peers: number
  /** A write failed for good: nothing more is stored (`close` follows). */
  readonly isFailed: boolean
  /** Runs `task` in the workflow's write queue (after every write queued so far). */
  enqueue: <T>(task: () => Promise<T>) => Promise<T>
  /** Runs `fn` (which applies one update as `origin`) and returns the pending entry it became, if any. */
  applyAs: (origin: unknown, described: Described | undefined, fn: () => void) => Pending | undefined
  /** Puts windows taken by `forward` back ahead of what is pending and queues a cut. */
  requeue: (batch: Pending[]) => void
  /** Sends a forwarded window, now stored, to this server's peers (as after a local commit). */
  deliver: (batch: Pending[]) => void
  /**
   * Applies updates stored already (by another server): relayed to the peers at once, never
   * stored again. Returns whether they changed the document.
   */
  applyStored: (updates: Uint8Array[], by: Pick<VersionRecord, 'author' | 'description'>) => boolean
  /** Takes `meta` as current after `records` stored elsewhere, and runs the commit hooks for them. */
  advance: (meta: WorkflowMeta, records: VersionRecord[]) => void
}

/**
 * Makes the writer of a workflow as it loads; `state` is the state as of the loaded head (the
 * first diff base, shared with the schema baseline so keeping it costs no extra heap).
 */
export type WriterFactory = (host: WriterHost, state: JsonObject) => Promise<WorkflowWriter>

/** The only server on its store: always the writer. */
export const LOCAL_WRITER: WorkflowWriter = {
  isWriter: true,
  writesHere: () => true,
  // Never called: writesHere is always true.
  forward: () => {},
  diffBase: () => null,
  committed: () => {},
  // Another process wrote this store: nothing here can reconcile that.
  onHeadMoved: async () => false,
  settled: async () => {},
  exclusive: (_key, fn) => fn(),
  presenceChanged: () => {},
  close: () => {}
}
