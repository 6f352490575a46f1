/**
 * `accord reshard --workers N`: rewrites a stopped server's LevelDB data directory for another
 * worker count (server/workers/layout.ts), every workflow moving to the shard that owns it
 * (server/workers/shard-of.ts). Like rekey, the new directory is built beside the old one,
 * every shard of it is verified, and only then is it swapped in; the old one is kept as
 * `<data>.before-reshard-<time>` until the operator removes it.
 *
 *   const result = await reshardStore('./data', 4, key)   // 1 -> 4 shards, or 4 -> 2, or 4 -> 1
 */
import { rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { workflowOfKey } from '../../src/store/keys.ts'
import { importLevelRecords, KEYCHECK_KEY } from '../../src/store/level.ts'
import { StorageError } from '../../src/model/errors.ts'
import { prepareLayout, readLayout } from '../workers/layout.ts'
import { shardOf } from '../workers/shard-of.ts'
import { NoDataError } from './cli-errors.ts'
import { openOffline } from './offline.ts'
import { verifyStores, type VerifyReport } from './verify.ts'

export interface ReshardResult {
  /** Records written over all new shards. */
  records: number
  from: number
  to: number
  report: VerifyReport
  /** Where the old directory was kept; null when nothing changed (or verification failed). */
  previous: string | null
}

export const reshardStore = async (dataDir: string, workers: number, encryptionKey?: Uint8Array, onRecords?: (records: number) => void): Promise<ReshardResult> => {
  const dir = path.resolve(dataDir)
  const found = await readLayout(dir)
  if (found.kind === 'empty') throw new NoDataError(dataDir)
  const layout = found
  const empty: VerifyReport = { workflows: 0, versions: 0, problems: [] }
  if (layout.workers === workers) return { records: 0, from: workers, to: workers, report: empty, previous: null }
  const temp = `${dir}.reshard-${process.pid}`
  await rm(temp, { recursive: true, force: true })
  try {
    const targets = await prepareLayout(temp, workers)
    let records = 0
    // One pass over every old shard per new shard: simple, and the memory stays flat.
    for (const [index, target] of targets.entries()) {
      async function * mine (): AsyncGenerator<[string, Uint8Array]> {
        for (const source of layout.dirs) {
          const store = await openOffline(source, encryptionKey)
          try {
            const exported = store.exportRecords?.()
            if (exported === undefined) throw new StorageError('the store cannot export its records')
            for await (const [key, value] of exported) {
              const id = workflowOfKey(key)
              // The key check goes to every shard (each is opened alone); other global keys to shard 0.
              if (key === KEYCHECK_KEY || (id === null ? index === 0 : shardOf(id, workers) === index)) {
                onRecords?.(++records)
                yield [key, value]
              }
            }
          } finally {
            await store.close()
          }
        }
      }
      await importLevelRecords(target, mine())
    }
    const report = await verifyStores(targets, encryptionKey)
    if (report.problems.length > 0) {
      await rm(temp, { recursive: true, force: true })
      return { records, from: layout.workers, to: workers, report, previous: null }
    }
    const previous = `${dir}.before-reshard-${Date.now()}`
    await rename(dir, previous)
    await rename(temp, dir)
    return { records, from: layout.workers, to: workers, report, previous }
  } catch (err) {
    await rm(temp, { recursive: true, force: true })
    throw err
  }
}
