/**
 * `accord rekey`: rewrites every stored value under a new encryption key (or none), for key
 * rotation. The server must be stopped. The new store is built beside the old one (every shard
 * of it, for a directory written by `--workers N`), verified with the new key (which writes its
 * key check), and only then swapped in as a whole (rebuild.ts).
 */
import path from 'node:path'
import { createFramer } from '../../src/store/frame.ts'
import { importLevelRecords, KEYCHECK_KEY } from '../../src/store/level.ts'
import type { VerifyReport } from './verify.ts'
import { prepareLayout, readLayout } from '../workers/layout.ts'
import { NoDataError } from './cli-errors.ts'
import { rebuildBeside, storedRecords } from './rebuild.ts'

export interface RekeyProgress {
  records?: (p: { records: number }) => void
  verify?: (done: number, total: number) => void
}

export interface RekeyResult { records: number, report: VerifyReport, previous: string }

export const rekeyStore = async (dataDir: string, oldKey: Uint8Array | undefined, newKey: Uint8Array | undefined, progress: RekeyProgress = {}): Promise<RekeyResult> => {
  const layout = await readLayout(dataDir)
  if (layout.kind === 'empty') throw new NoDataError(dataDir)
  const from = createFramer(oldKey)
  const to = createFramer(newKey)
  let records = 0
  const { report, previous } = await rebuildBeside(dataDir, 'rekey', newKey, async temp => {
    const temps = await prepareLayout(temp, layout.workers)
    for (const [i, source] of layout.dirs.entries()) {
      async function * reframed (): AsyncGenerator<[string, Uint8Array]> {
        for await (const [key, value] of storedRecords(source, oldKey)) {
          if (key === KEYCHECK_KEY) continue
          yield [key, to.frame(from.unframe(key, value))]
          progress.records?.({ records: ++records })
        }
      }
      await importLevelRecords(temps[i] as string, reframed())
    }
    return temps
  }, progress.verify)
  return { records, report, previous: previous ?? path.resolve(dataDir) }
}
