/**
 * The checksum every version record carries: SHA-256 (hex) of the state's JSON. States come from
 * `readState`, whose keys are sorted, so the JSON is canonical and every peer computes the same.
 *
 *   record.checksum === checksumOf(readState(doc))
 */
import { createHash } from 'node:crypto'

export const checksumOf = (json: unknown): string => createHash('sha256').update(JSON.stringify(json)).digest('hex')
