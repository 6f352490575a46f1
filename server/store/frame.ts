/**
 * Every stored value is framed as [format:u8][crc32(payload):u32 big-endian][payload], so a
 * flipped byte or a truncated value is detected when it is read instead of being served.
 */
import { crc32 } from 'node:zlib'
import { CorruptDataError } from '../../src/errors.ts'

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
