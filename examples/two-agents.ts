/**
 * Two agents sharing a task list through Accord.
 *
 *   npx tsx examples/two-agents.ts      (or: npm run example:two-agents)
 *
 * A planner adds tasks; a worker watches the list, claims each new task and completes it.
 * The planner logs every change it sees, with its author and the JSON Patch ops, and the
 * program ends once every task is done.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'
import { createServer } from '../server/server.ts'
import { openWorkflow } from '../src/node/index.ts'

// The shape of the shared state. Optional: with a schema, `state` is typed and any local change
// that would break the shape is refused before it is written.
const Board = z.object({
  tasks: z.array(z.object({
    id: z.number(),
    title: z.string(),
    status: z.enum(['todo', 'doing', 'done']),
    by: z.string().optional()
  }))
})

// 1. An Accord server in this process: free port, throwaway LevelDB directory.
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'accord-example-'))
const server = createServer({ port: 0, dataDir, log: { level: 'warn' } })
const { url } = await server.listen()
console.log(`server on ${url}`)

// Never hang: give up (exit 1) if the example does not finish in time.
const watchdog = setTimeout(() => {
  console.error('example timed out')
  process.exit(1)
}, 15_000)

// 2. Two agents on the same workflow. Each holds a full replica; the server relays and stores.
const planner = openWorkflow('launch-plan', { url, agentId: 'planner', schema: Board })
const worker = openWorkflow('launch-plan', { url, agentId: 'worker', schema: Board })
await Promise.all([planner.whenSynced(), worker.whenSynced()])

// 3. The planner logs each change: who made it and the RFC 6902 ops that describe it.
//    It resolves `allDone` once every task it created is done.
const TITLES = ['write the spec', 'build the feature', 'ship it']
const allDone = new Promise<void>(resolve => {
  planner.subscribe(change => {
    const note = change.description !== undefined ? ` (${change.description})` : ''
    console.log(`[planner sees] ${change.author}${note}: ${JSON.stringify(change.ops)}`)
    const tasks = planner.state.tasks ?? []
    if (tasks.length === TITLES.length && tasks.every(t => t.status === 'done')) resolve()
  })
})

// 4. The worker reacts to the planner's changes: it claims each open task, "works" on it for a
//    moment, then marks it done. Each update edits only that task's fields.
worker.subscribe(change => {
  if (change.local) return
  for (const task of worker.state.tasks ?? []) {
    if (task.status !== 'todo') continue
    worker.update(d => {
      const t = d.tasks.find(x => x.id === task.id)
      if (t !== undefined) { t.status = 'doing'; t.by = 'worker' }
    })
    setTimeout(() => {
      worker.update(d => {
        const t = d.tasks.find(x => x.id === task.id)
        if (t !== undefined) t.status = 'done'
      })
    }, 50)
  }
})

// 5. The planner adds the tasks, one update each, with a description of the change (shown in
//    its own change log). `update` turns the edited draft into the smallest Yjs change, so the
//    worker's concurrent edits to other tasks are never lost.
TITLES.forEach((title, i) => {
  planner.update(d => {
    d.tasks ??= []
    d.tasks.push({ id: i + 1, title, status: 'todo' })
  }, { description: `add task #${i + 1}` })
})

await allDone

// 6. Both replicas agree; print the final state and shut everything down.
console.log('final state:', JSON.stringify(planner.state, null, 2))
await planner.close()
await worker.close()
await server.close()
await rm(dataDir, { recursive: true, force: true })
clearTimeout(watchdog)
