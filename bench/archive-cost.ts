/**
 * What one archive pass costs on LevelDB: a workflow of 3,000 small versions (one map key each,
 * a keyframe every 100, as with the defaults), then every whole interval archived in turn.
 * Prints the CPU (process-wide, LevelDB's and zlib's threads included) and wall time per
 * 100-version chunk. Not part of `npm run bench`: a quick check for changes to archiving.
 *
 *   npx tsx bench/archive-cost.ts            # N=3000 versions by default
 *   STATE_KB=500 npx tsx bench/archive-cost.ts   # the first version also writes ~500 KB of state,
 *                                                # so every keyframe (and chunk) carries it
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import * as Y from 'yjs'
import { openLevelStore } from '../src/store/level.ts'
import type { VersionRecord } from '../src/model/schema.ts'

const N = Number(process.env.N ?? 3000)
const EVERY = 100
const STATE_KB = Number(process.env.STATE_KB ?? 0)
const dir = await mkdtemp(path.join(os.tmpdir(), 'accord-archive-cost-'))
const store = await openLevelStore(dir)
const id = 'wf'
const doc = new Y.Doc()
let updates: Uint8Array[] = []
doc.on('update', (u: Uint8Array) => { updates.push(u) })
const now = Date.now()
for (let v = 1; v <= N; v++) {
  updates = []
  const key = `agent-${v % 5}`
  // About 40 bytes of JSON per item, varied enough not to compress away.
  if (v === 1 && STATE_KB > 0) doc.getMap('state').set('blob', Array.from({ length: STATE_KB * 25 }, (_, i) => ({ i, text: `item ${(i * 2654435761) % 1e9}` })))
  const value = { round: v, note: `value ${v}` }
  doc.getMap('state').set(key, value)
  const record: VersionRecord = {
    workflowId: id,
    version: v,
    parentVersion: v - 1,
    snapshot: Buffer.from(Y.encodeSnapshot(Y.snapshot(doc))).toString('base64'),
    author: key,
    timestamp: now,
    description: '',
    meta: {},
    checksum: 'a'.repeat(64),
    changes: [{ op: 'replace', path: `/${key}`, value }]
  }
  const keyframe = v % EVERY === 0 ? Y.encodeStateAsUpdate(doc) : undefined
  const meta = { id, createdAt: now, updatedAt: now, head: v, conflicts: 0, bytes: 0, ...(keyframe === undefined ? {} : { keyframe: v }) }
  await store.commit(id, { meta, record, updates, keyframe })
}
const cpuMs = (): number => {
  const c = process.cpuUsage()
  return (c.user + c.system) / 1000
}
const cpu0 = cpuMs()
const wall0 = performance.now()
let chunks = 0
for (let to = EVERY; to <= N - EVERY; to += EVERY) {
  await store.archive(id, to - EVERY, to)
  chunks++
}
console.log(`archive: ${((cpuMs() - cpu0) / chunks).toFixed(2)} ms CPU, ${((performance.now() - wall0) / chunks).toFixed(2)} ms wall per ${EVERY}-version chunk (${chunks} chunks)`)
await store.close()
await rm(dir, { recursive: true, force: true })
