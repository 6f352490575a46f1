/**
 * `accord rekey`: rewrites every stored value under a new encryption key (or none), for key
 * rotation. The server must be stopped. The new store is built in a sibling directory (every
 * shard of it, for a directory written by `--workers N`), verified with the new key, and only
 * then swapped in as a whole; the old directory is kept as `<data>.before-rekey-<time>` until
 * the operator removes it.
 */
import { rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { createFramer } from '../../src/store/frame.ts'
import { importLevelRecords, KEYCHECK_KEY } from '../../src/store/level.ts'
import { verifyStores, type VerifyReport } from './verify.ts'
import { openOffline } from './offline.ts'
import { StorageError } from '../../src/model/errors.ts'
import { prepareLayout, readLayout } from '../workers/layout.ts'
import { NoDataError } from './cli-errors.ts'

export interface RekeyProgress {
  records?: (p: { records: number }) => void
  verify?: (done: number, total: number) => void
}

export interface RekeyResult { records: number, report: VerifyReport, previous: string }

/** Copies one store's records into a new LevelDB at `target`, each value reframed. */
const reframeInto = async (source: string, target: string, oldKey: Uint8Array | undefined, newKey: Uint8Array | undefined, count: () => void): Promise<number> => {
  const from = createFramer(oldKey)
  const to = createFramer(newKey)
  const store = await openOffline(source, oldKey)
  try {
    const exported = store.exportRecords?.()
    if (exported === undefined) throw new StorageError('the store cannot export its records')
    async function * reframed (): AsyncGenerator<[string, Uint8Array]> {
      for await (const [key, value] of exported as AsyncIterable<[string, Uint8Array]>) {
        if (key === KEYCHECK_KEY) continue
        yield [key, to.frame(from.unframe(key, value))]
        count()
      }
    }
    return await importLevelRecords(target, reframed())
  } finally {
    await store.close()
  }
}

export const rekeyStore = async (dataDir: string, oldKey: Uint8Array | undefined, newKey: Uint8Array | undefined, progress: RekeyProgress = {}): Promise<RekeyResult> => {
  const target = path.resolve(dataDir)
  const layout = await readLayout(target)
  if (layout.kind === 'empty') throw new NoDataError(dataDir)
  const temp = `${target}.rekey-${process.pid}`
  await rm(temp, { recursive: true, force: true })
  try {
    const temps = await prepareLayout(temp, layout.workers)
    let records = 0
    for (const [i, source] of layout.dirs.entries()) {
      await reframeInto(source, temps[i] as string, oldKey, newKey, () => { progress.records?.({ records: ++records }) })
    }
    // Opened with the new key, so the first open writes the store's key check under it.
    const report = await verifyStores(temps, newKey, { onProgress: progress.verify })
    if (report.problems.length > 0) {
      await rm(temp, { recursive: true, force: true })
      return { records, report, previous: target }
    }
    const previous = `${target}.before-rekey-${Date.now()}`
    await rename(target, previous)
    await rename(temp, target)
    return { records, report, previous }
  } catch (err) {
    await rm(temp, { recursive: true, force: true })
    throw err
  }
}
