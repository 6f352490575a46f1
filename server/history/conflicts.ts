/**
 * Detects concurrent writes of the same map key. In Yjs every write of a key is an Item whose
 * `origin` is the item the writer saw as the current value; the items of one key form a list
 * (oldest left) and the rightmost one is the value. A new item conflicts with every pre-existing
 * item right of its origin: its writer never saw those values.
 *
 * This scans the structs a transaction inserted (not the map events: a write that loses on
 * arrival changes no value and fires no event) and runs on 'beforeObserverCalls', before Yjs
 * garbage-collects the overwritten content.
 */
import * as Y from 'yjs'
import { toPointer } from '../../src/model/json.ts'
import { yToJson } from '../../src/model/json-yjs.ts'

export interface DetectedConflict {
  path: string
  writes: Array<{ clientId: number, value: unknown }>
  winnerClientId: number
}

type Item = Y.Item
type Type = Y.AbstractType<any>

/** Bound on the items walked per write (keeps a pathological key cheap). */
const MAX_CHAIN = 1000

const contains = (item: Item, id: Y.ID): boolean =>
  item.id.client === id.client && item.id.clock <= id.clock && id.clock < item.id.clock + item.length

const valueOf = (item: Item): unknown => {
  if (item.content instanceof Y.ContentDeleted) return null
  const content = item.content.getContent()
  return yToJson(content[content.length - 1])
}

const sameId = (a: Y.ID | null, b: Y.ID | null): boolean =>
  a === b || (a !== null && b !== null && a.client === b.client && a.clock === b.clock)

/**
 * An array element replaced concurrently: `fresh` and a pre-existing item were both inserted
 * between the same neighbours in place of the same (now deleted) element. Yjs keeps both values,
 * ordered by client id; the first one is reported as the winner.
 */
const arrayReplaceConflict = (fresh: Item, isNew: (item: Item) => boolean, root: Type): DetectedConflict | null => {
  const right = fresh.rightOrigin
  if (right === null) return null
  const rivals: Item[] = []
  let replaced: Item | null = null
  let steps = 0
  for (let it = fresh.right; it !== null && steps < MAX_CHAIN; it = it.right, steps++) {
    if (contains(it, right)) {
      replaced = it
      break
    }
    if (!isNew(it) && sameId(it.origin, fresh.origin) && sameId(it.rightOrigin, right)) rivals.push(it)
  }
  for (let it = fresh.left; it !== null && steps < MAX_CHAIN; it = it.left, steps++) {
    if (fresh.origin !== null && contains(it, fresh.origin)) break
    if (!isNew(it) && sameId(it.origin, fresh.origin) && sameId(it.rightOrigin, right)) rivals.unshift(it)
  }
  if (replaced === null || !replaced.deleted || rivals.length === 0) return null
  const parentPath = containerPath(fresh.parent as Type, root)
  if (parentPath === null) return null
  // The element that comes first among the rivals is what readers see at this index.
  const contenders = new Set<Item>([...rivals, fresh])
  let index = 0
  let first: Item = fresh
  for (let it = (fresh.parent as Type)._start; it !== null; it = it.right) {
    if (contenders.has(it)) {
      first = it
      break
    }
    if (!it.deleted && it.countable) index += it.length
  }
  return {
    path: toPointer([...parentPath, index]),
    writes: [...rivals, fresh].map(it => ({ clientId: it.id.client, value: valueOf(it) })),
    winnerClientId: first.id.client
  }
}

/** JSON path of a container below `root`, or null when it is not inside `root` (or inside a deleted container). */
const containerPath = (container: Type, root: Type): Array<string | number> | null => {
  const path: Array<string | number> = []
  let type = container
  while (type._item !== null) {
    const holder = type._item
    if (holder.deleted) return null
    if (holder.parentSub !== null) path.unshift(holder.parentSub)
    else {
      let index = 0
      for (let it = (holder.parent as Type)._start; it !== null && it !== holder; it = it.right) {
        if (!it.deleted && it.countable) index += it.length
      }
      path.unshift(index)
    }
    type = holder.parent as Type
  }
  return type === root ? path : null
}

export const detectConflicts = (doc: Y.Doc, root: Type, tr: Y.Transaction): DetectedConflict[] => {
  const out: DetectedConflict[] = []
  const isNew = (item: Item): boolean => item.id.clock >= (tr.beforeState.get(item.id.client) ?? 0)
  for (const [client, after] of tr.afterState) {
    const before = tr.beforeState.get(client) ?? 0
    if (after <= before) continue
    const structs = doc.store.clients.get(client) ?? []
    for (let i = Y.findIndexSS(structs, before); i < structs.length; i++) {
      const fresh = structs[i] as Item
      if (fresh.id.clock >= after) break
      if (!(fresh instanceof Y.Item) || !(fresh.parent instanceof Y.AbstractType)) continue
      if (fresh.parentSub === null) {
        const replaced = arrayReplaceConflict(fresh, isNew, root)
        if (replaced !== null) out.push(replaced)
        continue
      }
      // Items of this key the writer did not see: between its origin and itself (walking left,
      // usually zero steps) and right of it. Walks stop at the origin, so cost is O(concurrency).
      const origin = fresh.origin
      const unseen: Item[] = []
      let steps = 0
      for (let it = fresh.left; it !== null && steps < MAX_CHAIN; it = it.left, steps++) {
        if (origin !== null && contains(it, origin)) break
        unseen.unshift(it)
      }
      let winner: Item = fresh
      for (let it = fresh.right; it !== null && steps < MAX_CHAIN; it = it.right, steps++) {
        unseen.push(it)
        winner = it
      }
      const concurrent = unseen.filter(it => !isNew(it))
      if (concurrent.length === 0) continue
      const path = containerPath(fresh.parent as Type, root)
      if (path === null) continue
      out.push({
        path: toPointer([...path, fresh.parentSub]),
        writes: [...concurrent, fresh].map(it => ({ clientId: it.id.client, value: valueOf(it) })),
        winnerClientId: winner.id.client
      })
    }
  }
  return out
}
