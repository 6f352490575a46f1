/**
 * Opens the LevelDB store of a stopped server for the offline commands (verify, rekey). They
 * never create a store: a path without one (mistyped, empty, a file) is a NoDataError, and
 * nothing is written there.
 *
 *   const store = await openOffline('./data', key)   // NoDataError: "no Accord data at ./data"
 */
import { stat } from 'node:fs/promises'
import path from 'node:path'
import { openLevelStore } from '../../src/store/level.ts'
import type { Store } from '../../src/store/store.ts'
import { NoDataError } from './cli-errors.ts'

/** Throws NoDataError unless `dir` holds a LevelDB store (its CURRENT file names the manifest). */
export const requireStore = async (dir: string): Promise<void> => {
  const info = await stat(path.join(dir, 'CURRENT')).catch(() => null)
  if (info === null || !info.isFile()) throw new NoDataError(dir)
}

export const openOffline = async (dir: string, encryptionKey?: Uint8Array): Promise<Store> => {
  await requireStore(dir)
  return openLevelStore(path.resolve(dir), { encryptionKey, mustExist: true })
}
