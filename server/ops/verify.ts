/**
 * `accord verify`: every stored value is checked (checksums, framing, layout), then each
 * workflow logically: its versions 1..head exist once each with parentVersion = version - 1
 * (hot or archived), and its head state replays from the stored Yjs data to the checksum its
 * version record names. Snapshots must point at existing versions. A store at rest must hold no
 * version past its head (a commit writes both at once); on a store that servers keep writing
 * (`online`, PostgreSQL) each workflow is checked up to the head it had when listed instead.
 */
import { CorruptDataError } from '../../src/model/errors.ts'
import * as history from '../history/history.ts'
import type { Registry } from '../sync/registry.ts'
import type { Store } from '../../src/store/store.ts'
import { openLevelStore } from '../../src/store/level.ts'

export interface VerifyReport {
  workflows: number
  versions: number
  problems: Array<{ workflowId?: string, key?: string, problem: string }>
}

/** History needs a registry only for loaded workflows; verify reads the store alone. */
const noRegistry = { get: () => undefined } as unknown as Registry

export interface VerifyOptions {
  /** Servers keep writing (PostgreSQL): check each workflow up to the head it had when listed. */
  online?: boolean
  /** Called after each workflow (progress on a terminal). */
  onProgress?: (done: number, total: number) => void
}

export const verifyStore = async (store: Store, { online = false, onProgress }: VerifyOptions = {}): Promise<VerifyReport> => {
  const report: VerifyReport = { workflows: 0, versions: 0, problems: (await store.scan()).map(p => ({ ...p })) }
  const ctx: history.HistoryContext = { store, registry: noRegistry, snapshots: { keepRoutine: Infinity, recoveryDays: Infinity } }
  let metas
  try {
    metas = await store.listWorkflows()
  } catch (err) {
    report.problems.push({ problem: `cannot list workflows: ${(err as Error).message}` })
    return report
  }
  for (const meta of metas) {
    report.workflows++
    const id = meta.id
    const fail = (problem: string): void => { report.problems.push({ workflowId: id, problem }) }
    try {
      let expected = meta.head
      let before = online ? meta.head + 1 : undefined
      for (;;) {
        const page = await store.versions(id, { before, limit: 500 })
        for (const record of page) {
          if (record.version > meta.head) {
            fail(`version ${record.version} is stored past the head ${meta.head}`)
            continue
          }
          if (record.version !== expected) fail(`version ${expected} missing (found ${record.version} after it)`)
          if (record.parentVersion !== record.version - 1) fail(`version ${record.version} has parent ${record.parentVersion}`)
          expected = record.version - 1
          report.versions++
        }
        if (page.length < 500) break
        before = page[page.length - 1]?.version
      }
      if (expected !== 0) fail(`versions 1..${expected} missing`)
      if (meta.head > 0) await history.stateAt(ctx, id, meta.head)
      // Online, snapshots first, then the head: a snapshot taken meanwhile is never past it.
      const snapshots = await store.listSnapshots(id)
      const head = online ? (await store.getMeta(id))?.head ?? meta.head : meta.head
      for (const snap of snapshots) {
        if (snap.version > head) fail(`snapshot ${snap.id} points at version ${snap.version}, past the head ${head}`)
      }
    } catch (err) {
      fail(err instanceof CorruptDataError ? err.message : `cannot check: ${(err as Error).message}`)
    }
    onProgress?.(report.workflows, metas.length)
  }
  return report
}

/**
 * Verifies LevelDB stores at rest one after the other (the shards of a data directory), summed
 * into one report; `also` adds checks of each open store (shard ownership, say).
 */
export const verifyStores = async (
  dirs: readonly string[],
  encryptionKey: Uint8Array | undefined,
  options: { onProgress?: VerifyOptions['onProgress'], also?: (store: Store, index: number) => Promise<VerifyReport['problems']> } = {}
): Promise<VerifyReport> => {
  const report: VerifyReport = { workflows: 0, versions: 0, problems: [] }
  for (const [i, dir] of dirs.entries()) {
    const store = await openLevelStore(dir, { encryptionKey, mustExist: true })
    try {
      const r = await verifyStore(store, { onProgress: options.onProgress })
      report.workflows += r.workflows
      report.versions += r.versions
      report.problems.push(...r.problems, ...await options.also?.(store, i) ?? [])
    } finally {
      await store.close()
    }
  }
  return report
}
