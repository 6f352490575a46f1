// Browsers: the document lives in IndexedDB (y-indexeddb), one database per location + workflow.
import { IndexeddbPersistence } from 'y-indexeddb'
import * as idb from 'lib0/indexeddb'
import type { AttachPersistence } from './persistence.ts'

export const attachPersistence: AttachPersistence = (doc, workflowId, location) => {
  const persistence = new IndexeddbPersistence(`${location}:${workflowId}`, doc)
  return {
    whenLoaded: persistence.whenSynced.then(() => {}),
    // y-indexeddb writes each update in its own transaction without exposing it. IndexedDB runs
    // transactions with overlapping scope in creation order, so a read opened now completes
    // only after every write queued before it has committed.
    whenPersisted: async () => {
      await persistence.whenSynced
      if (persistence.db === null) return
      const [updates] = idb.transact(persistence.db, ['updates'], 'readonly')
      await idb.count(updates as IDBObjectStore)
    },
    destroy: async () => { await persistence.destroy() }
  }
}
