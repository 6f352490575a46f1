/**
 * An agent that works whether or not the server is up: it keeps its replica of the workflow in a
 * local LevelDB directory (the `persistence` option), edits right away, and syncs when it can.
 *
 *   npx tsx examples/offline-agent.ts [--url ws://127.0.0.1:1234] [--workflow demo] [--agent scout]
 *                                     [--cache DIR] [--notes 2] [--wait 60000]
 *   (or: npm run example:offline -- --workflow demo)
 *
 * Each run:
 *  1. loads its local replica from --cache (default: <tmp>/accord-offline-agent/<workflow>/<agent>;
 *     LevelDB allows one process per directory, so give each agent its own);
 *  2. marks the notes it added in earlier runs as done and adds --notes new ones, online or not
 *     (same note format as examples/browser: one root key per note);
 *  3. waits until every edit is stored in the local replica: from here on, killing the process
 *     loses nothing;
 *  4. waits up to --wait ms for the server: once synced (edits flow both ways, the CRDT merges
 *     them) it waits until the server has stored this agent's edits, prints the merged state and
 *     exits 0. If the server stays unreachable it says so and exits 0 too: the edits are safe in
 *     the cache and the next run syncs them. --wait 0 only edits locally.
 * Exit 1 on an error (e.g. the server refuses the workflow), 2 on bad arguments.
 *
 * Try it with the server down, then up:
 *   npx tsx examples/offline-agent.ts --wait 0            # edits offline, exits
 *   npx tsx examples/offline-agent.ts --wait 0            # again: finds its earlier edits
 *   npx accord serve &                                    # the server comes back
 *   npx tsx examples/offline-agent.ts                     # syncs everything, prints the state
 */
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { TimeoutError, openWorkflow, type JsonObject, type JsonValue } from '../src/node/index.ts'

const usage = 'usage: offline-agent.ts [--url ws://127.0.0.1:1234] [--workflow demo] [--agent scout] [--cache DIR] [--notes N] [--wait MS]'
let values: { url: string, workflow: string, agent: string, cache?: string, notes: string, wait: string }
try {
  values = parseArgs({
    options: {
      url: { type: 'string', default: 'ws://127.0.0.1:1234' },
      workflow: { type: 'string', default: 'demo' },
      agent: { type: 'string', default: 'scout' },
      cache: { type: 'string' },
      notes: { type: 'string', default: '2' },
      wait: { type: 'string', default: '60000' }
    }
  }).values
} catch (err) {
  console.error(`${(err as Error).message}\n${usage}`)
  process.exit(2)
}
const count = Number(values.notes)
const waitMs = Number(values.wait)
if (![count, waitMs].every(n => Number.isInteger(n) && n >= 0)) {
  console.error(`--notes and --wait must be whole numbers >= 0\n${usage}`)
  process.exit(2)
}
const agentId = values.agent
const cache = path.resolve(values.cache ?? path.join(os.tmpdir(), 'accord-offline-agent', values.workflow, agentId))

interface Note { text: string, by: string, done: boolean, at: number }
const isNote = (v: JsonValue | undefined): v is JsonObject & Note =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && typeof v.text === 'string'
const notesOf = (state: JsonObject): Array<[string, Note]> =>
  Object.entries(state).filter((e): e is [string, JsonObject & Note] => isNote(e[1]))
const mine = (state: JsonObject): string[] => notesOf(state).filter(([, n]) => n.by === agentId).map(([id]) => id)
const line = (state: JsonObject): string => notesOf(state).map(([, n]) => `${n.done ? '[x]' : '[ ]'} ${n.text} (${n.by})`).join('\n  ')

const wf = openWorkflow(values.workflow, {
  url: values.url,
  agentId,
  persistence: cache,
  recovery: { baseMs: 200, capMs: 2000 }
})
let unreachable = false
wf.onRecovery(event => {
  // Say it once per outage, not on every retry.
  if (event.type === 'reconnecting' && !unreachable) console.log(`server ${values.url} unreachable: working offline, retrying in the background`)
  if (event.type === 'reconnecting') unreachable = true
  if (event.type === 'recovered') console.log(`server reachable again after ${event.attempts} attempts`)
})
wf.provider.on('sync', (synced: boolean) => { if (synced) unreachable = false })

try {
  // 1. The local replica: whatever this agent saw or wrote in earlier runs.
  await wf.whenLoaded()
  const before = mine(wf.state)
  console.log(`loaded ${values.workflow} from ${cache}: ${notesOf(wf.state).length} notes, ${before.length} of them by ${agentId}`)

  // 2. Edit, whether or not the server is there. Each edit is a local Yjs change first.
  const where = (): string => (wf.synced ? 'online' : unreachable ? 'offline' : 'not synced yet')
  for (const id of before) {
    const note = wf.state[id] as JsonObject & Note
    if (note.done) continue
    wf.update(d => { (d[id] as JsonObject).done = true }, { description: `${agentId} finished: ${note.text}` })
    console.log(`marked done (${where()}): ${note.text}`)
  }
  const run = Date.now().toString(36)
  const added: string[] = []
  for (let i = 1; i <= count; i++) {
    const id = `${agentId}-${run}-${i}`
    const text = `${agentId}: note ${i} of ${count} from run ${run}`
    wf.update(d => { d[id] = { text, by: agentId, done: false, at: Date.now() } }, { description: `${agentId} added a note` })
    added.push(id)
    console.log(`added (${where()}): ${text}`)
  }

  // 3. Stored locally: safe from here on, even if the process is killed.
  await wf.whenPersisted()
  console.log(`saved locally: ${mine(wf.state).length} notes by ${agentId} in ${cache}`)

  // 4. Sync, if the server is there (or comes back within --wait).
  if (waitMs === 0) {
    console.log(wf.synced ? 'synced; not waiting for the server to store (--wait 0)' : 'not waiting for the server (--wait 0): the next run syncs')
  } else {
    if (!wf.synced) console.log(`waiting up to ${waitMs} ms for the server`)
    let synced = true
    try {
      await wf.whenSynced({ timeoutMs: waitMs })
    } catch (err) {
      if (!(err instanceof TimeoutError)) throw err
      synced = false
      console.log(`still offline after ${waitMs} ms: the edits stay in ${cache} and sync on the next run`)
    }
    if (synced) {
      console.log(`synced with ${values.url}`)
      // The server has stored our edits once its newest version contains them. A record
      // subscription wakes the check up whenever the server stores a version.
      const expected = mine(wf.state).map(id => [id, JSON.stringify(wf.state[id])] as const)
      let wake = (): void => {}
      const stop = wf.subscribe({}, () => { wake() })
      await stop.ready
      for (;;) {
        const next = new Promise<void>(resolve => { wake = resolve })
        const [head] = await wf.history({ limit: 1 })
        const stored = head === undefined ? {} : await wf.stateAt(head.version)
        if (expected.every(([id, json]) => JSON.stringify(stored[id]) === json)) {
          console.log(`stored on the server as of version ${head?.version ?? 0}`)
          break
        }
        await next
      }
      stop()
      console.log(`state:\n  ${line(wf.state)}`)
    }
  }
} catch (err) {
  console.error(`offline-agent: ${(err as Error).message}`)
  process.exitCode = 1
} finally {
  await wf.close()
}
