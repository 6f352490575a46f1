/**
 * Rebuilding a workflow's document from the store: the newest keyframe plus every log entry
 * after it, applied in one transaction, with the decoded content trimmed to size.
 *
 *   const { doc, meta } = await loadDoc(store, id)   // meta: emptyMeta(id) when never written
 */
import * as Y from 'yjs'
import { emptyMeta, type Store, type WorkflowMeta } from '../../src/store/store.ts'

/**
 * Yjs decodes each JSON value into an array grown by push, which reserves room for 17 entries
 * (about 150 bytes) to hold usually one: copied to its exact size, a loaded 1 KB workflow takes
 * about 5 KB less heap. Only the array's storage changes, never the content.
 */
const trimContent = (doc: Y.Doc): void => {
  for (const structs of doc.store.clients.values()) {
    for (const struct of structs) {
      if (struct instanceof Y.Item && struct.content instanceof Y.ContentAny) struct.content.arr = struct.content.arr.slice()
    }
  }
}

/** The workflow's document (gc on) and meta as stored. Throws what the store throws (CorruptDataError, ...). */
export const loadDoc = async (store: Store, id: string): Promise<{ doc: Y.Doc, meta: WorkflowMeta }> => {
  const stored = await store.load(id)
  const doc = new Y.Doc({ gc: true })
  try {
    doc.transact(() => {
      if (stored.keyframe !== null) Y.applyUpdate(doc, stored.keyframe.state)
      for (const entry of stored.entries) for (const update of entry.updates) Y.applyUpdate(doc, update)
    })
  } catch (err) {
    doc.destroy()
    throw err
  }
  trimContent(doc)
  return { doc, meta: stored.meta ?? emptyMeta(id) }
}
