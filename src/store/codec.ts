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

/** First byte of a chunk laid out as [0][stored keyframe][compressed body] (see decodeChunk). */
const CHUNK_WITH_STORED_KEYFRAME = 0

/**
 * An archive chunk from what a store keeps, copied, not decoded and re-encoded (archiving runs
 * on the write path): the keyframe at `from` as stored (compressed by `compress`, or null at
 * version 0), and the log entries and record texts, compressed together. Layout:
 * [0][varUint8Array keyframe][Brotli(from, n, (version, record, entry)*)].
 * `decodeChunk` reads it back as a Chunk.
 */
export const encodeChunk = async (chunk: { from: number, storedKeyframe: Uint8Array | null, records: string[], entries: EncodedEntry[] }): Promise<Uint8Array> => {
  const body = encoding.createEncoder()
  encoding.writeVarUint(body, chunk.from)
  encoding.writeVarUint(body, chunk.entries.length)
  chunk.entries.forEach((entry, i) => {
    encoding.writeVarUint(body, entry.version)
    encoding.writeVarString(body, chunk.records[i] as string)
    encoding.writeVarUint8Array(body, entry.encoded)
  })
  const enc = encoding.createEncoder()
  encoding.writeUint8(enc, CHUNK_WITH_STORED_KEYFRAME)
  encoding.writeVarUint8Array(enc, chunk.storedKeyframe ?? new Uint8Array(0))
  encoding.writeUint8Array(enc, await compress(encoding.toUint8Array(body)))
  return encoding.toUint8Array(enc)
}

/**
 * Reads a chunk of either layout. Chunks written before the keyframe was copied are one Brotli
 * stream of [from][keyframe][n][entries]. Brotli's stream header starts with the window size,
 * and its first bit is 0 only for a 16-bit window; `compress` uses the default 22-bit one, so
 * those chunks start with an odd byte and never with 0 (a test checks this on `compress`).
 */
export const decodeChunk = (data: Uint8Array): Chunk => {
  const parts = chunkParts(data)
  if (parts === null) return decodeBrotliChunk(data)
  const body = decoding.createDecoder(decompress(parts.body))
  const from = decoding.readVarUint(body)
  const { records, entries } = readEntries(body)
  return { from, keyframe: from === 0 ? null : decompress(parts.storedKeyframe), records, entries }
}

/**
 * The compressed parts of a chunk that copies its keyframe (empty at version 0), or null for a
 * chunk of the first layout, which is one compressed stream.
 */
export const chunkParts = (data: Uint8Array): { storedKeyframe: Uint8Array, body: Uint8Array } | null => {
  if (data[0] !== CHUNK_WITH_STORED_KEYFRAME) return null
  const dec = decoding.createDecoder(data)
  decoding.readUint8(dec)
  const storedKeyframe = decoding.readVarUint8Array(dec)
  return { storedKeyframe, body: decoding.readTailAsUint8Array(dec) }
}

/** The first layout: everything in one Brotli stream. */
const decodeBrotliChunk = (data: Uint8Array): Chunk => {
  const dec = decoding.createDecoder(decompress(data))
  const from = decoding.readVarUint(dec)
  const kf = decoding.readVarUint8Array(dec)
  const { records, entries } = readEntries(dec)
  return { from, keyframe: from === 0 ? null : kf, records, entries }
}

const readEntries = (dec: decoding.Decoder): { records: string[], entries: VersionEntry[] } => {
  const n = decoding.readVarUint(dec)
  const records: string[] = []
  const entries: VersionEntry[] = []
  for (let i = 0; i < n; i++) {
    const version = decoding.readVarUint(dec)
    records.push(decoding.readVarString(dec))
    entries.push({ version, updates: decodeUpdates(decoding.readVarUint8Array(dec)) })
  }
  return { records, entries }
}
