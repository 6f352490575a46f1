/**
 * Local persistence of an SDK handle's document, so an agent can start and edit offline and sync
 * later. Node keeps it in a LevelDB directory through the server's own storage module; browsers
 * in IndexedDB through y-indexeddb. Each platform entry passes its own (see platform.ts).
 */
import type * as Y from 'yjs'

export interface LocalPersistence {
  /** Resolves once the locally stored state is in the document. */
  whenLoaded: Promise<void>
  /** Resolves once every change made so far is stored locally. */
  whenPersisted: () => Promise<void>
  /** Stores what is pending and releases the store. */
  destroy: () => Promise<void>
}

export type AttachPersistence = (doc: Y.Doc, workflowId: string, location: string, agentId: string) => LocalPersistence
