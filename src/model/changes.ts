/**
 * Yjs transaction events -> RFC 6902 ops, in O(size of the change). Applied in order to the
 * JSON before the transaction, the ops produce the JSON after it.
 *
 * Yjs hands deep events sorted parents first and reports paths in final coordinates, so ops for
 * a parent's structure come before edits inside its (surviving) children.
 */
import * as Y from 'yjs'
import type { Operation } from 'fast-json-patch'
import { toPointer } from './json.ts'
import { yToJson } from './json-yjs.ts'

export const eventsToOps = (events: Array<Y.YEvent<any>>): Operation[] => {
  const ops: Operation[] = []
  for (const event of events) {
    const base = event.path
    const target = event.target
    if (target instanceof Y.Map) {
      for (const [key, change] of event.changes.keys) {
        const path = toPointer([...base, key])
        if (change.action === 'delete') ops.push({ op: 'remove', path })
        else {
          const value = yToJson(target.get(key))
          ops.push(change.action === 'add' ? { op: 'add', path, value } : { op: 'replace', path, value })
        }
      }
    } else if (target instanceof Y.Array) {
      let index = 0
      for (const d of event.changes.delta) {
        if (d.retain !== undefined) index += d.retain
        else if (d.delete !== undefined) {
          const path = toPointer([...base, index])
          for (let i = 0; i < d.delete; i++) ops.push({ op: 'remove', path })
        } else if (Array.isArray(d.insert)) {
          for (const item of d.insert) {
            ops.push({ op: 'add', path: toPointer([...base, index]), value: yToJson(item) })
            index++
          }
        }
      }
    } else {
      // Y.Text / XML from stock clients: report the whole value, they have no JSON delta form.
      ops.push({ op: 'replace', path: toPointer(base), value: yToJson(target) })
    }
  }
  return ops
}
