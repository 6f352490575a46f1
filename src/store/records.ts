/**
 * What every backend does the same way between its storage and the Store interface: turning a
 * driver's failure into a StorageError (our own typed errors pass through), and reading framed
 * JSON records back through their zod schemas, so damage is a CorruptDataError naming the key.
 */
// Core types and functions: records are checked against classic and zod/mini schemas alike.
import { safeParse, type $ZodType } from 'zod/v4/core'
import { jitted } from './jit-schema.ts'
import { CorruptDataError, HeadMovedError, StorageError } from '../model/errors.ts'
import { VersionRecordSchema, type VersionRecord } from '../model/schema.ts'
import { unframeJson as plainUnframeJson, type Framer } from './frame.ts'
import type { Chunk } from './codec.ts'
import type { VersionEntry } from './store.ts'
import { key as storeKey } from './keys.ts'

export const wrapStorage = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof CorruptDataError || err instanceof StorageError || err instanceof HeadMovedError) throw err
    throw new StorageError(`${what} failed: ${(err as Error).message}`, { cause: err })
  }
}

/** Reads framed JSON (plain, or through `framer` when values may be encrypted) against a schema. */
export const recordParser = (framer?: Pick<Framer, 'unframeJson'>) => <T>(schema: $ZodType<T>, key: string, value: Uint8Array): T => {
  const parsed = safeParse(jitted(schema), (framer?.unframeJson ?? plainUnframeJson)(key, value))
  if (!parsed.success) throw new CorruptDataError(key, 'record does not match its schema')
  return parsed.data
}

/** Strict: a record that is not valid UTF-8 is damaged, not text to guess at. */
const UTF8 = new TextDecoder('utf-8', { fatal: true })

/**
 * A stored record's JSON text (unframed already) as it goes into an archive chunk, unparsed:
 * its frame's checksum vouches for the bytes, and readers of the chunk validate it
 * (parseArchivedRecord). Parsing and re-serializing each record was a third of archiving's CPU.
 */
export const recordText = (key: string, bytes: Uint8Array): string => {
  try {
    return UTF8.decode(bytes)
  } catch {
    throw new CorruptDataError(key, 'version record is not UTF-8 text')
  }
}

/** A version record stored as JSON text inside an archive chunk. */
export const parseArchivedRecord = (key: string, json: string): VersionRecord => {
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    throw new CorruptDataError(key, 'invalid JSON in archive')
  }
  const parsed = safeParse(jitted(VersionRecordSchema), value)
  if (!parsed.success) throw new CorruptDataError(key, 'archived record does not match its schema')
  return parsed.data
}

/**
 * The archived part of `versions` (newest first): appends to `out`, until it holds `limit`, the
 * records of versions <= `through`, reading chunk by chunk through `readChunk` (the chunk
 * holding a version, or null).
 */
export const archivedRecordsThrough = async (
  id: string, through: number, limit: number, out: VersionRecord[], readChunk: (version: number) => Promise<Chunk | null>
): Promise<VersionRecord[]> => {
  let next = through
  while (out.length < limit && next > 0) {
    const chunk = await readChunk(next)
    if (chunk === null) break
    for (let i = chunk.entries.length - 1; i >= 0 && out.length < limit; i--) {
      const entry = chunk.entries[i] as VersionEntry
      if (entry.version <= next) out.push(parseArchivedRecord(storeKey(id, 'arch', entry.version), chunk.records[i] as string))
    }
    next = chunk.from
  }
  return out
}

/**
 * The archived part of `versionsAfter`: records with version > after, oldest first, read chunk by
 * chunk through `readChunk` (the chunk holding a version, or null) up to `archived`. Returns them
 * and the first version still to read from the hot records.
 */
export const archivedRecordsAfter = async (
  id: string, after: number, limit: number, archived: number, readChunk: (version: number) => Promise<Chunk | null>
): Promise<{ records: VersionRecord[], next: number }> => {
  const records: VersionRecord[] = []
  let next = after + 1
  while (next <= archived && records.length < limit) {
    const chunk = await readChunk(next)
    if (chunk === null) break
    chunk.entries.forEach((entry, i) => {
      if (entry.version >= next && records.length < limit) {
        records.push(parseArchivedRecord(storeKey(id, 'arch', entry.version), chunk.records[i] as string))
      }
    })
    next = (chunk.entries[chunk.entries.length - 1]?.version ?? next) + 1
  }
  return { records, next }
}
