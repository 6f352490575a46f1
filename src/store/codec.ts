/**
 * Binary encodings of stored values (before framing): update lists, compressed keyframes and
 * archive chunks. Compression is Brotli from node:zlib (maintained, built in, good ratio on
 * Yjs data); quality 5 keeps it fast enough for the write path. Writes compress in libuv's
 * thread pool (the main thread is what bounds a busy server's latency); reads decompress inline.
 */
import { promisify } from 'node:util'
import { brotliCompress, brotliDecompressSync, constants } from 'node:zlib'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { VersionEntry } from './store.ts'

const BROTLI = { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } }

const brotli = promisify(brotliCompress)
export const compress = async (data: Uint8Array): Promise<Uint8Array> => new Uint8Array(await brotli(data, BROTLI))
export const decompress = (data: Uint8Array): Uint8Array => new Uint8Array(brotliDecompressSync(data))

export const encodeUpdates = (updates: Uint8Array[]): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, updates.length)
  for (const u of updates) encoding.writeVarUint8Array(enc, u)
  return encoding.toUint8Array(enc)
}

export const decodeUpdates = (data: Uint8Array): Uint8Array[] => {
  const dec = decoding.createDecoder(data)
  const n = decoding.readVarUint(dec)
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) out.push(decoding.readVarUint8Array(dec))
  return out
}

/** An archive chunk: versions (from, to] with the state at `from` to replay them on. */
export interface Chunk {
  from: number
  keyframe: Uint8Array | null
  records: string[]
  entries: VersionEntry[]
}

/** A log entry as a store keeps it: its updates already encoded by `encodeUpdates`. */
export interface EncodedEntry {
  version: number
  encoded: Uint8Array
}

/**
 * An archive chunk from entries as a store keeps them: copied, not decoded and re-encoded
 * (archiving runs on the write path). `decodeChunk` reads it back as a Chunk.
 */
export const encodeChunk = (chunk: Omit<Chunk, 'entries'> & { entries: EncodedEntry[] }): Promise<Uint8Array> => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, chunk.from)
  encoding.writeVarUint8Array(enc, chunk.keyframe ?? new Uint8Array(0))
  encoding.writeVarUint(enc, chunk.entries.length)
  chunk.entries.forEach((entry, i) => {
    encoding.writeVarUint(enc, entry.version)
    encoding.writeVarString(enc, chunk.records[i] as string)
    encoding.writeVarUint8Array(enc, entry.encoded)
  })
  return compress(encoding.toUint8Array(enc))
}

export const decodeChunk = (data: Uint8Array): Chunk => {
  const dec = decoding.createDecoder(decompress(data))
  const from = decoding.readVarUint(dec)
  const kf = decoding.readVarUint8Array(dec)
  const n = decoding.readVarUint(dec)
  const records: string[] = []
  const entries: VersionEntry[] = []
  for (let i = 0; i < n; i++) {
    const version = decoding.readVarUint(dec)
    records.push(decoding.readVarString(dec))
    entries.push({ version, updates: decodeUpdates(decoding.readVarUint8Array(dec)) })
  }
  return { from, keyframe: from === 0 ? null : kf, records, entries }
}
