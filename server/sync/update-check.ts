/**
 * A check of a peer's Yjs update before it is applied. Yjs decodes integers up to 2^64, but it can
 * only encode integers up to Number.MAX_SAFE_INTEGER again, and it trusts a struct's length:
 *  - a delete range ending beyond 2^53 is kept as a pending delete set, an item whose origin lies
 *    beyond it as a pending struct; from then on every encoding of the document (sync replies,
 *    keyframes) throws "Integer out of Range" and every later update fails to apply;
 *  - an empty struct (length 0) is integrated and breaks the struct store: a keyframe written
 *    after it cannot be loaded again.
 *  - a value Yjs can encode but JSON cannot (a bigint, from lib0's writeAny) is integrated, and
 *    the next version cut fails on it ("Do not know how to serialize a BigInt"), which stops the
 *    workflow for every peer.
 * One short message would leave the workflow unable to sync, load or store, so such an update is
 * refused as malformed. Decoding the whole update first also refuses a cut-off or garbled delete set
 * before any of the update's structs are integrated.
 */
import * as Y from 'yjs'
import { InvalidMessageError } from '../../src/model/errors.ts'

const MAX = Number.MAX_SAFE_INTEGER

interface Id { client: number, clock: number }

const isId = (value: unknown): value is Id =>
  typeof value === 'object' && value !== null && typeof (value as Id).client === 'number' && typeof (value as Id).clock === 'number'

const checkId = (id: Id, what: string): void => {
  if (!Number.isSafeInteger(id.client) || !Number.isSafeInteger(id.clock)) throw new InvalidMessageError(`${what} ${id.client}:${id.clock} is beyond ${MAX}`)
}

/** Throws on a bigint anywhere in a content value (objects and arrays searched, cycles cannot occur in decoded values). */
const checkJsonValue = (value: unknown, client: number): void => {
  if (typeof value === 'bigint') throw new InvalidMessageError(`struct of client ${client} holds a bigint, which is not JSON`)
  if (Array.isArray(value)) for (const v of value) checkJsonValue(v, client)
  else if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) for (const v of Object.values(value)) checkJsonValue(v, client)
}

/** Throws when `update` (v1) does not decode, or holds what Yjs could not encode or store again. */
export const assertEncodableUpdate = (update: Uint8Array): void => {
  const { structs, ds } = Y.decodeUpdate(update)
  for (const struct of structs) {
    checkId(struct.id, 'struct')
    if (!(struct.id.clock + struct.length <= MAX)) throw new InvalidMessageError(`struct of client ${struct.id.client} ends beyond clock ${MAX}`)
    // Yjs never writes an empty struct; integrating one breaks its struct store (lookups, encoding).
    if (!(struct.length > 0)) throw new InvalidMessageError(`empty struct of client ${struct.id.client} at clock ${struct.id.clock}`)
    if (struct instanceof Y.Item) {
      if (struct.content instanceof Y.ContentAny) for (const v of struct.content.arr) checkJsonValue(v, struct.id.client)
      if (struct.origin !== null) checkId(struct.origin, 'origin')
      if (struct.rightOrigin !== null) checkId(struct.rightOrigin, 'right origin')
      if (isId(struct.parent)) checkId(struct.parent, 'parent')
    }
  }
  for (const [client, items] of ds.clients) {
    for (const item of items) {
      if (!Number.isSafeInteger(client) || !(item.clock + item.len <= MAX)) throw new InvalidMessageError(`deletion of client ${client} ends beyond clock ${MAX}`)
    }
  }
}
