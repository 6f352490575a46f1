/**
 * What the benchmark agents write, shared by the load generator, the cold-load writer and the
 * machine limits (so raw LevelDB is measured with the same update sizes).
 *
 * An agent update sets its own key of the Accord state root (`doc.getMap('state')`, as the SDK
 * maps JSON) to a short string carrying the time it was scheduled and a sequence number, so a
 * receiving agent in the same process measures update-to-receipt latency from it.
 */
import * as Y from 'yjs'

/** Characters of padding in each agent update (the update is about 80 bytes on the wire). */
export const PAD = 'x'.repeat(40)

export const stateMap = (doc: Y.Doc): Y.Map<unknown> => doc.getMap('state')

/** The value an agent writes: `<scheduled ms>|<seq>|<padding>`. */
export const agentValue = (scheduledMs: number, seq: number): string => `${scheduledMs.toFixed(3)}|${seq}|${PAD}`

/** The sequence number carried by an agent value (NaN for anything else). */
export const seqOf = (value: unknown): number => {
  if (typeof value !== 'string') return Number.NaN
  const i = value.indexOf('|')
  return i < 0 ? Number.NaN : Number.parseInt(value.slice(i + 1), 10)
}

/** Writes about 1 KB of JSON (ten tasks) into the state root, as the SDK would map it. */
export const fillKilobyte = (doc: Y.Doc, step = 0): void => {
  doc.transact(() => {
    const state = stateMap(doc)
    const tasks = new Y.Array<Y.Map<unknown>>()
    state.set('tasks', tasks)
    tasks.push(Array.from({ length: 10 }, (_, k) => {
      const task = new Y.Map<unknown>()
      task.set('attempts', 0)
      task.set('id', k)
      task.set('status', 'todo')
      task.set('title', `task ${k} ${'x'.repeat(40)}`)
      return task
    }))
    state.set('step', step)
  })
}

/** `count` consecutive agent updates of five agents sharing one doc (what the store persists). */
export const typicalUpdates = (count: number): Uint8Array[] => {
  const doc = new Y.Doc()
  const out: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => { out.push(u) })
  for (let i = 0; i < count; i++) stateMap(doc).set(`agent-${i % 5}`, agentValue(performance.now(), i))
  doc.destroy()
  return out
}
