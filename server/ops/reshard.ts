/**
 * `accord reshard --workers N`: rewrites a stopped server's LevelDB data directory for another
 * worker count (server/workers/layout.ts), every workflow moving to the shard that owns it
 * (server/workers/shard-of.ts). Like rekey, the new directory is built beside the old one,
 * every shard of it is verified, and only then is it swapped in (rebuild.ts); the old one is
 * kept as `<data>.before-reshard-<time>` until the operator removes it.
 *
 *   const result = await reshardStore('./data', 4, key)   // 1 -> 4 shards, or 4 -> 2, or 4 -> 1
 */
import { workflowOfKey } from '../../src/store/keys.ts'
import { importLevelRecords, KEYCHECK_KEY } from '../../src/store/level.ts'
import { prepareLayout, readLayout } from '../workers/layout.ts'
import { shardOf } from '../workers/shard-of.ts'
import { NoDataError } from './cli-errors.ts'
import { rebuildBeside, storedRecords } from './rebuild.ts'
import type { VerifyReport } from './verify.ts'

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
  const layout = await readLayout(dataDir)
  if (layout.kind === 'empty') throw new NoDataError(dataDir)
  const sources = layout.dirs
  if (layout.workers === workers) return { records: 0, from: workers, to: workers, report: { workflows: 0, versions: 0, problems: [] }, previous: null }
  let records = 0
  const { report, previous } = await rebuildBeside(dataDir, 'reshard', encryptionKey, async temp => {
    const targets = await prepareLayout(temp, workers)
    // One pass over every old shard per new shard: simple, and the memory stays flat.
    for (const [index, target] of targets.entries()) {
      async function * mine (): AsyncGenerator<[string, Uint8Array]> {
        for (const source of sources) {
          for await (const [key, value] of storedRecords(source, encryptionKey)) {
            const id = workflowOfKey(key)
            // The key check goes to every shard (each is opened alone); other global keys to shard 0.
            if (key === KEYCHECK_KEY || (id === null ? index === 0 : shardOf(id, workers) === index)) {
              onRecords?.(++records)
              yield [key, value]
            }
          }
        }
      }
      await importLevelRecords(target, mine())
    }
    return targets
  })
  return { records, from: layout.workers, to: workers, report, previous }
}
