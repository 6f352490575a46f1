/**
 * A workflow's peers and their presence (awareness): which connections are attached, which
 * awareness clients each controls (removed when it leaves), and every presence change relayed to
 * all peers. The awareness is created on first use: most loaded workflows have no peer.
 *
 *   const presence = new Presence(doc, (awareness, clients, origin) => { ... publish elsewhere })
 *   presence.addPeer(peer)
 *   applyAwarenessUpdate(presence.awareness, update, peer)   // relayed to every peer
 *   presence.removePeer(peer)                                 // its clients' states go too
 */
import type * as Y from 'yjs'
import * as awarenessProtocol from 'y-protocols/awareness'
import { encodeAwareness, type Peer } from './contracts.ts'

/** Told of each presence change after the peers got it (`origin`: who applied the update). */
export type PresenceListener = (awareness: awarenessProtocol.Awareness, clients: number[], origin: unknown) => void

export class Presence {
  /** Peers and the awareness client ids each of them controls. */
  readonly peers = new Map<Peer, Set<number>>()
  private states: awarenessProtocol.Awareness | null = null
  private readonly doc: Y.Doc
  private readonly onChange: PresenceListener
  private destroyed = false

  constructor (doc: Y.Doc, onChange: PresenceListener) {
    this.doc = doc
    this.onChange = onChange
  }

  get awareness (): awarenessProtocol.Awareness {
    if (this.states === null) {
      this.states = new awarenessProtocol.Awareness(this.doc)
      this.states.setLocalState(null)
      this.states.on('update', this.onUpdate)
    }
    return this.states
  }

  addPeer (peer: Peer): void {
    this.peers.set(peer, new Set())
  }

  removePeer (peer: Peer): void {
    const clients = this.peers.get(peer)
    if (clients === undefined) return
    this.peers.delete(peer)
    if (clients.size > 0 && !this.destroyed && this.states !== null) {
      awarenessProtocol.removeAwarenessStates(this.states, Array.from(clients), null)
    }
  }

  /** Sends `message` to every peer but `except`. */
  broadcast (message: Uint8Array, except?: unknown): void {
    for (const peer of this.peers.keys()) if (peer !== except) peer.send(message)
  }

  private readonly onUpdate = (
    { added, updated, removed }: { added: number[], updated: number[], removed: number[] },
    origin: unknown
  ): void => {
    const owned = this.peers.get(origin as Peer)
    if (owned !== undefined) {
      for (const c of added) owned.add(c)
      for (const c of removed) owned.delete(c)
    }
    const changed = added.concat(updated, removed)
    if (changed.length === 0) return
    this.broadcast(encodeAwareness(this.awareness, changed))
    this.onChange(this.awareness, changed, origin)
  }

  /** Releases the awareness (its timers) and forgets the peers. Safe to call twice. */
  destroy (): void {
    if (this.destroyed) return
    this.destroyed = true
    if (this.states !== null) {
      this.states.off('update', this.onUpdate)
      this.states.destroy()
    }
    this.peers.clear()
  }
}
