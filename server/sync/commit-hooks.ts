/**
 * After-commit hooks: what runs once a version is durable (the change feed, metrics, the cluster
 * bus, archiving, lifecycle deadlines, the conflict resolver), one hook per concern, the way
 * Hocuspocus extensions subscribe to its lifecycle. The workflow knows only this interface; the
 * server decides which hooks a workflow gets.
 *
 *   const feedHook: CommitHook = { name: 'change feed', afterVersion: e => { feed.publish(e.record) } }
 *   createRegistry({ ..., hooks: [feedHook, metricsHook] })
 *
 * A hook that throws is logged and skipped: the version is stored and broadcast already, and
 * one concern's bug must not stop the others (or the write queue).
 */
import type { ConflictRecord, VersionRecord } from '../../src/model/schema.ts'
import type { WorkflowMeta } from '../../src/store/store.ts'
import type { Logger } from '../ops/log.ts'
import type { ChangeOrigin, Described } from './contracts.ts'

/** What a hook may use of the workflow that committed (a narrow view: hooks do not write queues). */
export interface CommittedWorkflow {
  readonly id: string
  /** Meta as of the newest version cut. */
  readonly currentMeta: WorkflowMeta
  readonly head: number
  readonly isFailed: boolean
  /** Applies a server-side change as `origin`, recorded as `described` (it becomes a version of its own). */
  transact: (fn: () => void, origin: ChangeOrigin, described?: Described) => void
  /** Resolves once every update applied so far is durable. */
  whenFlushed: (maxRounds?: number) => Promise<void>
  /** The live document (a resolver edits it inside `transact`). */
  readonly doc: import('yjs').Doc
}

/** One version, stored by this server (`local`) or by another one and applied here. */
export interface CommittedVersion {
  workflow: CommittedWorkflow
  record: VersionRecord
  /** Conflicts detected in this version (local commits only; remote ones arrive as records). */
  conflicts: ConflictRecord[]
  /** True when this server stored it; false when another server did (cluster mode). */
  local: boolean
  /** Seconds the commit took, including retries (0 for remote versions). */
  seconds: number
  /** The Yjs updates the version holds (local commits only: what the bus publishes). */
  updates: Uint8Array[]
  /** Their total size in bytes. */
  bytes: number
}

export interface CommitHook {
  /** For logs: which concern failed. */
  readonly name: string
  /** After a version is durable and broadcast to this server's peers. */
  afterVersion?: (version: CommittedVersion) => void
  /** After a commit that wrote a keyframe (retention may archive older versions now). */
  afterKeyframe?: (workflow: CommittedWorkflow) => void
  /** The runtime's next deadline (lifecycle timeout or task lease) changed; null: none. */
  deadlineChanged?: (workflow: CommittedWorkflow, deadline: number | null) => void
}

type Event = { [K in keyof CommitHook]-?: CommitHook[K] extends ((...args: infer A) => void) | undefined ? A : never }

/** Calls `event` on every hook that has it, in order; a throwing hook is logged and skipped. */
export const runHooks = <K extends 'afterVersion' | 'afterKeyframe' | 'deadlineChanged'>(
  hooks: readonly CommitHook[], log: Logger, event: K, ...args: Event[K]
): void => {
  for (const hook of hooks) {
    const fn = hook[event] as ((...a: Event[K]) => void) | undefined
    if (fn === undefined) continue
    try {
      fn(...args)
    } catch (err) {
      log.error('after-commit hook failed', { hook: hook.name, event, error: (err as Error).message })
    }
  }
}
