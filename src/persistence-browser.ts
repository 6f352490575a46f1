// Browsers: the document lives in IndexedDB (y-indexeddb), one database per location + workflow.
import { IndexeddbPersistence } from 'y-indexeddb'
import type { AttachPersistence } from './persistence.ts'

export const attachPersistence: AttachPersistence = (doc, workflowId, location) => {
  const idb = new IndexeddbPersistence(`${location}:${workflowId}`, doc)
  return {
    whenLoaded: idb.whenSynced.then(() => {}),
    // y-indexeddb writes each update in its own IndexedDB transaction as it happens.
    whenPersisted: async () => { await idb.whenSynced },
    destroy: async () => { await idb.destroy() }
  }
}
