/**
 * What the forwarding server spends on the version that comes back over the bus for an update it
 * forwarded (the "second decode" of docs/scale-out.md): decoding the bus message (meta and record
 * JSON, validated) and applying its update to a document that already holds it (a no-op apply).
 * A typical update of the cluster benches: one agent's key of a 5-key map. Not part of `npm run
 * bench`: a quick check of whether skipping that work is worth a protocol change.
 *
 *   npx tsx bench/second-decode.ts
 */
import * as Y from 'yjs'
import { decodeVersion, encodeVersion } from '../server/cluster/bus.ts'
const doc = new Y.Doc()
const map = doc.getMap('state')
for (let a = 0; a < 5; a++) map.set(`agent-${a}`, { round: 0, note: 'x'.repeat(40) })
let update: Uint8Array = new Uint8Array()
doc.on('update', (u: Uint8Array) => { update = u })
map.set('agent-1', { round: 1, note: 'y'.repeat(40) })
const now = Date.now()
const v = {
  meta: { id: 'cost-7', createdAt: now, updatedAt: now, head: 1234, conflicts: 0, violations: 0, bytes: 123456 },
  record: { workflowId: 'cost-7', version: 1234, parentVersion: 1233, snapshot: Buffer.from(Y.encodeSnapshot(Y.snapshot(doc))).toString('base64'), author: 'agent-1', timestamp: now, description: '', meta: {}, checksum: 'a'.repeat(64), changes: [{ op: 'replace', path: '/agent-1', value: { round: 1, note: 'y'.repeat(40) } }] },
  updates: [update]
}
const bytes = encodeVersion(v as never)
const N = 200000
const time = (name: string, fn: () => void): void => {
  // Warm up first, then CPU time over N calls.
  for (let i = 0; i < 20000; i++) fn()
  const t = process.cpuUsage()
  for (let i = 0; i < N; i++) fn()
  const c = process.cpuUsage(t)
  console.log(`${name}: ${((c.user + c.system) / N).toFixed(2)} µs`)
}
time('decodeVersion (meta + record JSON, zod)', () => { decodeVersion(bytes) })
time('Y.applyUpdate, no-op (doc has it)', () => { Y.applyUpdate(doc, update) })
console.log(`version bytes ${bytes.length}, update bytes ${update.length}`)
