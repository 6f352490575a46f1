/**
 * Why a LevelDB store did not open, in words an operator can act on. LevelDB reports every
 * fault as "Database failed to open"; the cause chain says which one it was.
 *
 *   await db.open().catch(err => { throw describeOpenError(location, err) })
 */
import { stat } from 'node:fs/promises'
import { StorageError } from '../model/errors.ts'

const causes = (err: unknown): Array<{ code?: string, message: string }> => {
  const out: Array<{ code?: string, message: string }> = []
  for (let e: unknown = err; e instanceof Error && out.length < 10; e = e.cause) out.push({ code: (e as { code?: string }).code, message: e.message })
  return out
}

/** A StorageError naming the path, the fault (locked, not writable, not a directory) and the fix. */
export const describeOpenError = async (location: string, err: unknown): Promise<StorageError> => {
  const chain = causes(err)
  const has = (test: (c: { code?: string, message: string }) => boolean): boolean => chain.some(test)
  if (has(c => c.code === 'LEVEL_LOCKED' || /lock .*already held/i.test(c.message))) {
    return new StorageError(`another accord serve is using ${location} (its lock is held: the store is in use by another process, an accord serve or command): stop it first, or give this one its own --data directory`, { cause: err })
  }
  const info = await stat(location).catch(() => null)
  if (info !== null && !info.isDirectory()) {
    return new StorageError(`${location} is a file, not a data directory: point --data at a directory (it is created if missing)`, { cause: err })
  }
  if (has(c => c.code === 'EACCES' || c.code === 'EPERM' || c.code === 'EROFS' || /permission denied|read-only file system/i.test(c.message))) {
    return new StorageError(`cannot write to ${location} (permission denied): make it writable by the user running accord, or choose another --data directory`, { cause: err })
  }
  if (has(c => c.code === 'ENOSPC' || /no space left/i.test(c.message))) {
    return new StorageError(`the disk holding ${location} is full: free space, or choose another --data directory`, { cause: err })
  }
  const detail = chain.map(c => c.message).filter(m => m !== 'Database failed to open').at(-1) ?? chain[0]?.message ?? String(err)
  return new StorageError(`cannot open the store at ${location}: ${detail}`, { cause: err })
}
