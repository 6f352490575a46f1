/**
 * PostgreSQL's CPU per commit (summed over every postgres process, from /proc) for the store's
 * commit statement sent unnamed or named (prepared): 3,000 small versions committed one after
 * another, the first 200 as warm-up. Not part of `npm run bench`: a quick check for changes to
 * the PostgreSQL store's statements. Needs PostgreSQL at 127.0.0.1:5432 (database test).
 *
 *   npx tsx bench/pg-commit-cost.ts unnamed && npx tsx bench/pg-commit-cost.ts named
 */
import { readFileSync, readdirSync } from 'node:fs'
import pg from 'pg'
import * as Y from 'yjs'
import { openPostgresStore } from '../server/store/postgres.ts'
const pgCpu = (): number => {
  let ticks = 0
  for (const pid of readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
      if (!comm.startsWith('postgres')) continue
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      ticks += Number(f[11]) + Number(f[12])
    } catch {}
  }
  return ticks * 10 // ms
}
const mode = process.argv[2] ?? 'unnamed'
const schema = `bench_prep_${mode}_${process.pid}`
const store = await openPostgresStore('postgres://postgres@127.0.0.1:5432/test', { schema, max: 2, preparedStatements: mode === 'named' })
const doc = new Y.Doc()
let updates: Uint8Array[] = []
doc.on('update', (u: Uint8Array) => { updates.push(u) })
const N = Number(process.env.N ?? 3000)
const now = Date.now()
let c0 = 0
let t0 = 0
for (let v = 1; v <= N; v++) {
  if (v === 201) { c0 = pgCpu(); t0 = performance.now() }
  updates = []
  doc.getMap('state').set(`agent-${v % 5}`, { round: v })
  const record = { workflowId: 'wf', version: v, parentVersion: v - 1, snapshot: 'AA==', author: 'a', timestamp: now, description: '', meta: {}, checksum: 'a'.repeat(64), changes: [{ op: 'replace', path: '/x', value: v }] }
  await store.commit('wf', { meta: { id: 'wf', createdAt: now, updatedAt: now, head: v, conflicts: 0, violations: 0, bytes: 0 }, record, updates } as never)
}
const n = N - 200
console.log(`${mode}: PostgreSQL ${((pgCpu() - c0) / n * 1000).toFixed(0)} µs CPU per commit, wall ${((performance.now() - t0) / n * 1000).toFixed(0)} µs`)
await store.close()
const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' })
await admin.connect(); await admin.query(`DROP SCHEMA "${schema}" CASCADE`); await admin.end()
