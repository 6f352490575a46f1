/**
 * After-commit hook: every conflict a version detected is logged and, with the `resolveConflict`
 * option, offered to the resolver; a value it returns is written as a change of its own by
 * `accord:resolver` and recorded as the conflict's resolution.
 *
 *   createRegistry({ ..., hooks: [resolverHook({ resolveConflict, store, log, track }), ...] })
 */
import type { JsonValue } from '../../src/model/json.ts'
import { applyPatchToYjs } from '../../src/model/patch.ts'
import { stateRoot } from '../../src/model/json-yjs.ts'
import type { ConflictRecord } from '../../src/model/schema.ts'
import type { Store } from '../../src/store/store.ts'
import type { Logger } from '../ops/log.ts'
import type { CommitHook, CommittedWorkflow } from '../sync/commit-hooks.ts'

/** Return a value to override the CRDT's pick (recorded as a resolution), or undefined to keep it. */
export type ConflictResolver = (conflict: ConflictRecord) => { value: JsonValue } | undefined | Promise<{ value: JsonValue } | undefined>

export interface ResolverHookOptions {
  resolveConflict: ConflictResolver | undefined
  store: Store
  log: Logger
  /** Runs a background task the server's close() waits for, logging its failure as `what`. */
  track: (task: Promise<unknown>, what: string) => void
}

const BY = 'accord:resolver'

export const resolverHook = (opts: ResolverHookOptions): CommitHook => {
  const resolve = async (resolver: ConflictResolver, wf: CommittedWorkflow, conflict: ConflictRecord): Promise<void> => {
    const decision = await resolver(conflict)
    if (decision === undefined || wf.isFailed) return
    wf.transact(() => {
      applyPatchToYjs(stateRoot(wf.doc), [{ op: 'add', path: conflict.path, value: decision.value }])
    }, { agentId: BY }, { description: `resolved conflict ${conflict.id} at ${conflict.path}` })
    await wf.whenFlushed(Number.POSITIVE_INFINITY)
    await opts.store.putConflict({ ...conflict, resolution: { value: decision.value, version: wf.head, by: BY } })
  }
  return {
    name: 'conflict resolver',
    afterVersion: ({ workflow: wf, conflicts }) => {
      for (const conflict of conflicts) {
        opts.log.info('conflict', { workflowId: wf.id, path: conflict.path, winner: conflict.winner, version: conflict.version })
        if (opts.resolveConflict !== undefined) opts.track(resolve(opts.resolveConflict, wf, conflict), 'conflict resolution')
      }
    }
  }
}
