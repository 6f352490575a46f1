/**
 * `accord rekey`: rewrites every stored value under a new encryption key (or none), for key
 * rotation. The server must be stopped. The new store is built in a sibling directory, verified
 * with the new key, and only then swapped in; the old directory is kept as
 * `<data>.before-rekey-<time>` until the operator removes it.
 */
import { rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { createFramer } from '../../src/store/frame.ts'
import { importLevelRecords, KEYCHECK_KEY, openLevelStore } from '../../src/store/level.ts'
import type { Store } from '../../src/store/store.ts'
import { verifyStore, type VerifyReport } from './verify.ts'
import { openOffline } from './offline.ts'
import { StorageError } from '../../src/model/errors.ts'

export interface RekeyProgress {
  records?: (p: { records: number }) => void
  verify?: (done: number, total: number) => void
}

export interface RekeyResult { records: number, report: VerifyReport, previous: string }

export const rekeyStore = async (dataDir: string, oldKey: Uint8Array | undefined, newKey: Uint8Array | undefined, progress: RekeyProgress = {}): Promise<RekeyResult> => {
  const target = path.resolve(dataDir)
  const temp = `${target}.rekey-${process.pid}`
  await rm(temp, { recursive: true, force: true })
  const from = createFramer(oldKey)
  const to = createFramer(newKey)
  let source: Store | null = await openOffline(target, oldKey)
  try {
    const exported = source.exportRecords?.()
    if (exported === undefined) throw new StorageError('the store cannot export its records')
    async function * reframed (): AsyncGenerator<[string, Uint8Array]> {
      let records = 0
      for await (const [key, value] of exported as AsyncIterable<[string, Uint8Array]>) {
        if (key === KEYCHECK_KEY) continue
        yield [key, to.frame(from.unframe(key, value))]
        progress.records?.({ records: ++records })
      }
    }
    const records = await importLevelRecords(temp, reframed())
    await source.close()
    source = null
    const fresh = await openLevelStore(temp, { encryptionKey: newKey })
    let report: VerifyReport
    try {
      report = await verifyStore(fresh, { onProgress: progress.verify })
    } finally {
      await fresh.close()
    }
    if (report.problems.length > 0) {
      await rm(temp, { recursive: true, force: true })
      return { records, report, previous: target }
    }
    const previous = `${target}.before-rekey-${Date.now()}`
    await rename(target, previous)
    await rename(temp, target)
    return { records, report, previous }
  } catch (err) {
    await source?.close()
    await rm(temp, { recursive: true, force: true })
    throw err
  }
}
