/**
 * Every stored value is framed as [format:u8][crc32(payload):u32 big-endian][payload], so a
 * flipped byte or a truncated value is detected when it is read instead of being served.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { CorruptDataError, StorageError } from '../model/errors.ts'

const FORMAT_V1 = 1
const HEADER = 5

export const frame = (payload: Uint8Array): Uint8Array => {
  const out = new Uint8Array(HEADER + payload.length)
  const view = new DataView(out.buffer)
  out[0] = FORMAT_V1
  view.setUint32(1, crc32(payload))
  out.set(payload, HEADER)
  return out
}

export const unframe = (key: string, value: Uint8Array): Uint8Array => {
  if (value.length < HEADER) throw new CorruptDataError(key, 'value shorter than its header')
  if (value[0] !== FORMAT_V1) throw new CorruptDataError(key, `unknown format ${value[0]}`)
  const payload = value.subarray(HEADER)
  const expected = new DataView(value.buffer, value.byteOffset, HEADER).getUint32(1)
  if (crc32(payload) !== expected) throw new CorruptDataError(key, 'checksum mismatch')
  return payload
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const frameJson = (value: unknown): Uint8Array => frame(encoder.encode(JSON.stringify(value)))

export const unframeJson = (key: string, value: Uint8Array): unknown => {
  try {
    return JSON.parse(decoder.decode(unframe(key, value)))
  } catch (err) {
    if (err instanceof CorruptDataError) throw err
    throw new CorruptDataError(key, 'invalid JSON')
  }
}

/**
 * Encryption at rest. With a key, values are framed as
 *   [2][crc32(rest):u32][iv:12][tag:16][AES-256-GCM ciphertext of the payload]
 * Keys stay plaintext (key order is what LevelDB sorts by), and the CRC covers the encrypted bytes,
 * so `accord verify` can check integrity even without the key; with the key, GCM's tag also
 * authenticates every value. Plain (format 1) values stay readable, so turning encryption on
 * needs no downtime; `accord rekey` rewrites every value under a new key (or none).
 */
const FORMAT_ENCRYPTED = 2
const IV = 12
const TAG = 16

export interface Framer {
  frame: (payload: Uint8Array) => Uint8Array
  unframe: (key: string, value: Uint8Array) => Uint8Array
  frameJson: (value: unknown) => Uint8Array
  unframeJson: (key: string, value: Uint8Array) => unknown
  readonly encrypted: boolean
}

const plain: Framer = { frame, unframe, frameJson, unframeJson, encrypted: false }

/** Parses a 32-byte key given as 64 hex digits or base64. */
export const parseEncryptionKey = (text: string): Uint8Array => {
  const trimmed = text.trim()
  const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64')
  if (bytes.length !== 32) throw new StorageError('an encryption key must be 32 bytes, as 64 hex digits or base64')
  return new Uint8Array(bytes)
}

export const createFramer = (encryptionKey?: Uint8Array): Framer => {
  if (encryptionKey === undefined) return plain
  const key = Buffer.from(encryptionKey)
  const sealed = (payload: Uint8Array): Uint8Array => {
    const iv = randomBytes(IV)
    const cipher = createCipheriv('aes-256-gcm', key, iv)
    const body = Buffer.concat([cipher.update(payload), cipher.final()])
    const rest = Buffer.concat([iv, cipher.getAuthTag(), body])
    const out = new Uint8Array(HEADER + rest.length)
    out[0] = FORMAT_ENCRYPTED
    new DataView(out.buffer).setUint32(1, crc32(rest))
    out.set(rest, HEADER)
    return out
  }
  const open = (k: string, value: Uint8Array): Uint8Array => {
    if (value[0] !== FORMAT_ENCRYPTED) return unframe(k, value)
    if (value.length < HEADER + IV + TAG) throw new CorruptDataError(k, 'value shorter than its header')
    const rest = value.subarray(HEADER)
    if (crc32(rest) !== new DataView(value.buffer, value.byteOffset, HEADER).getUint32(1)) throw new CorruptDataError(k, 'checksum mismatch')
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, rest.subarray(0, IV))
      decipher.setAuthTag(rest.subarray(IV, IV + TAG))
      return new Uint8Array(Buffer.concat([decipher.update(rest.subarray(IV + TAG)), decipher.final()]))
    } catch {
      throw new CorruptDataError(k, 'does not decrypt with the configured key')
    }
  }
  return {
    frame: sealed,
    unframe: open,
    frameJson: value => sealed(encoder.encode(JSON.stringify(value))),
    unframeJson: (k, value) => {
      const payload = open(k, value)
      try {
        return JSON.parse(decoder.decode(payload))
      } catch {
        throw new CorruptDataError(k, 'invalid JSON')
      }
    },
    encrypted: true
  }
}

/** Checks the integrity of a value without decrypting it (verify without the key). */
export const checkFrame = (key: string, value: Uint8Array): void => {
  if (value[0] === FORMAT_ENCRYPTED) {
    if (value.length < HEADER + IV + TAG) throw new CorruptDataError(key, 'value shorter than its header')
    if (crc32(value.subarray(HEADER)) !== new DataView(value.buffer, value.byteOffset, HEADER).getUint32(1)) throw new CorruptDataError(key, 'checksum mismatch')
    return
  }
  unframe(key, value)
}

/** Whether a stored value is encrypted. */
export const isEncrypted = (value: Uint8Array): boolean => value[0] === FORMAT_ENCRYPTED
