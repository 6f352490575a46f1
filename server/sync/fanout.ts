/**
 * Fan-out: how stored updates reach a workflow's peers. Each message is encoded once for every
 * peer that gets it; stock y-websocket peers get sync updates, extended peers also get an
 * annotation naming the author before each run of updates.
 *
 *   deliverBatch(peers, batch)          // a stored window, to the peers of its workflow
 *   relay(peers.keys(), update, origin, description)   // one update stored elsewhere
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import { MessageType, encodeFramed } from '../../src/model/protocol.ts'
import { originAgent, type Peer } from './contracts.ts'
import type { Pending } from './version-cut.ts'

/** Most updates merged into one frame when relaying a version (Y.mergeUpdates grows faster than linearly). */
const MERGE_MAX = 64

/** One update on its way to the peers, except those in `skip`. */
export interface Outgoing { update: Uint8Array, origin: unknown, description: string | undefined, skip: unknown[] }

interface Run { items: Outgoing[], annotation: Uint8Array, message: Uint8Array }

export const encodeSyncUpdate = (update: Uint8Array): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MessageType.sync)
  syncProtocol.writeUpdate(enc, update)
  return encoding.toUint8Array(enc)
}

const chunks = <T>(list: T[], size: number): T[][] => {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}

const merged = (items: Outgoing[]): Uint8Array =>
  items.length === 1 ? (items[0] as Outgoing).update : Y.mergeUpdates(items.map(item => item.update))

const wants = (peer: Peer, from: Outgoing[]): boolean => from.some(item => !item.skip.includes(peer))

/** Consecutive updates of the same author and description, merged (for extended peers). */
const runsOf = (items: Outgoing[]): Run[] => {
  const runs: Run[] = []
  for (let i = 0; i < items.length;) {
    const first = items[i] as Outgoing
    const author = originAgent(first.origin)
    let j = i + 1
    while (j < items.length && j - i < MERGE_MAX && originAgent((items[j] as Outgoing).origin) === author && (items[j] as Outgoing).description === first.description) j++
    const run = items.slice(i, j)
    runs.push({ items: run, annotation: encodeFramed(MessageType.origin, null, { author, description: first.description }), message: encodeSyncUpdate(merged(run)) })
    i = j
  }
  return runs
}

/**
 * Sends a version's updates to the peers as few messages as possible, each encoded once: under
 * load a window holds many updates, and one merged frame per version costs far less than a
 * frame (and a socket write) per update per peer. Stock peers get the whole version as one
 * update (a peer's own part is a no-op to apply); extended peers get one merged update per run
 * of the same author and description, after the annotation naming them.
 */
export const deliver = (peers: Iterable<Peer>, items: Outgoing[]): void => {
  if (items.length === 0) return
  let whole: Uint8Array[] | null = null
  let runs: Run[] | null = null
  for (const peer of peers) {
    if (!peer.extended) {
      if (!wants(peer, items)) continue
      whole ??= chunks(items, MERGE_MAX).map(part => encodeSyncUpdate(merged(part)))
      for (const message of whole) peer.send(message)
      continue
    }
    runs ??= runsOf(items)
    for (const run of runs) {
      if (!wants(peer, run.items)) continue
      peer.send(run.annotation)
      peer.send(run.message)
    }
  }
}

/** Sends one update (preceded, for extended peers, by who wrote it) to every peer. */
export const relay = (peers: Iterable<Peer>, update: Uint8Array, origin: unknown, description: string | undefined): void => {
  let message: Uint8Array | null = null
  let annotation: Uint8Array | null = null
  for (const peer of peers) {
    if (peer.extended) peer.send(annotation ??= encodeFramed(MessageType.origin, null, { author: originAgent(origin), description }))
    peer.send(message ??= encodeSyncUpdate(update))
  }
}

/** What each peer gets of a stored window (nobody gets back their own update). */
const outgoing = (peers: ReadonlyMap<Peer, unknown>, batch: Pending[]): Outgoing[] => {
  const items: Outgoing[] = []
  for (let i = 0; i < batch.length; i++) {
    const { update, origin, description } = batch[i] as Pending
    const next = batch[i + 1]
    if (next?.compensates === true) {
      // Everyone but the writer gets the write and its undoing as one update; the writer, who
      // has the write already, gets the undoing.
      i++
      items.push({ update: Y.mergeUpdates([update, next.update]), origin, description, skip: [origin] })
      items.push({ update: next.update, origin: next.origin, description: next.description, skip: Array.from(peers.keys()).filter(p => p !== origin) })
    } else {
      items.push({ update, origin, description, skip: [origin] })
    }
  }
  return items
}

/** Sends a stored window of a workflow to its peers (see `deliver`). */
export const deliverBatch = (peers: ReadonlyMap<Peer, unknown>, batch: Pending[]): void => {
  deliver(peers.keys(), outgoing(peers, batch))
}
