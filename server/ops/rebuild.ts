/**
 * What the offline rewrites (`accord rekey`, `accord reshard`) share: reading every record of a
 * stopped server's store, and replacing a data directory only by a verified copy. The copy is
 * built beside the directory, every store in it is verified, and only then is it swapped in;
 * the old directory is kept as `<dir>.before-<what>-<time>` until the operator removes it.
 *
 *   const { report, previous } = await rebuildBeside('./data', 'rekey', newKey, async temp => [...])
 */
import { rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { StorageError } from '../../src/model/errors.ts'
import { openOffline } from './offline.ts'
import { verifyStores, type VerifyReport } from './verify.ts'

/** Every record of the store at `dir`, opened offline (never created) and closed after. */
export async function * storedRecords (dir: string, encryptionKey: Uint8Array | undefined): AsyncGenerator<[string, Uint8Array]> {
  const store = await openOffline(dir, encryptionKey)
  try {
    const exported = store.exportRecords?.()
    if (exported === undefined) throw new StorageError('the store cannot export its records')
    yield * exported
  } finally {
    await store.close()
  }
}

/**
 * `build(temp)` writes the new directory at `temp` and returns its store directories, which are
 * verified with `encryptionKey`. `previous` is where the old directory went, or null when the
 * copy did not verify (then `dir` is untouched and the copy is gone).
 */
export const rebuildBeside = async (
  dataDir: string, what: string, encryptionKey: Uint8Array | undefined,
  build: (temp: string) => Promise<string[]>, onVerify?: (done: number, total: number) => void
): Promise<{ report: VerifyReport, previous: string | null }> => {
  const dir = path.resolve(dataDir)
  const temp = `${dir}.${what}-${process.pid}`
  await rm(temp, { recursive: true, force: true })
  try {
    const report = await verifyStores(await build(temp), encryptionKey, { onProgress: onVerify })
    if (report.problems.length > 0) {
      await rm(temp, { recursive: true, force: true })
      return { report, previous: null }
    }
    const previous = `${dir}.before-${what}-${Date.now()}`
    await rename(dir, previous)
    await rename(temp, dir)
    return { report, previous }
  } catch (err) {
    await rm(temp, { recursive: true, force: true })
    throw err
  }
}
