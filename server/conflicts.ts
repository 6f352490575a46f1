/**
 * Detects concurrent writes of the same map key. In Yjs every write of a key is an Item whose
 * `origin` is the item the writer saw as the current value; the items of one key form a list
 * (oldest left). A new item conflicts with every pre-existing item right of its origin: the
 * writer never saw those values. Yjs keeps the rightmost item: that is the winner.
 * Runs in the observer, before Yjs garbage-collects the overwritten content.
 */
import * as Y from 'yjs'
import { toPointer } from '../src/json.ts'
import { yToJson } from '../src/json-yjs.ts'

export interface DetectedConflict {
  path: string
  writes: Array<{ clientId: number, value: unknown }>
  winnerClientId: number
}

type Item = Y.Item

/** Item chains longer than this are not scanned (keeps a pathological key cheap). */
const MAX_CHAIN = 1000

const contains = (item: Item, id: Y.ID): boolean =>
  item.id.client === id.client && item.id.clock <= id.clock && id.clock < item.id.clock + item.length

const valueOf = (item: Item): unknown => {
  if (item.content instanceof Y.ContentDeleted) return null
  const content = item.content.getContent()
  return yToJson(content[content.length - 1])
}

export const detectConflicts = (events: Array<Y.YEvent<any>>, tr: Y.Transaction): DetectedConflict[] => {
  const out: DetectedConflict[] = []
  const isNew = (item: Item): boolean => item.id.clock >= (tr.beforeState.get(item.id.client) ?? 0)
  for (const event of events) {
    const map = event.target
    if (!(map instanceof Y.Map)) continue
    for (const [key, change] of event.changes.keys) {
      if (change.action === 'delete') continue
      const current = (map as unknown as { _map: Map<string, Item> })._map.get(key)
      if (current === undefined) continue
      const chain: Item[] = []
      for (let it: Item | null = current; it !== null && chain.length < MAX_CHAIN; it = it.left as Item | null) chain.push(it)
      chain.reverse()
      for (const fresh of chain.filter(isNew)) {
        const origin = fresh.origin
        const seenUpTo = origin === null ? -1 : chain.findIndex(i => contains(i, origin))
        const unseen = chain.slice(seenUpTo + 1).filter(i => i !== fresh && !isNew(i))
        if (unseen.length === 0) continue
        out.push({
          path: toPointer([...event.path, key]),
          writes: [...unseen, fresh].map(i => ({ clientId: i.id.client, value: valueOf(i) })),
          winnerClientId: current.id.client
        })
      }
    }
  }
  return out
}
