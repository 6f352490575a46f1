/**
 * The two-agent example against an Accord server that already runs (Docker, compose, a cluster
 * behind a load balancer): a planner adds tasks, a worker completes them, and the program exits
 * 0 once both replicas agree that every task is done (1 after 30 s).
 *
 *   ACCORD_URL=ws://127.0.0.1:1234 ACCORD_AUTH_SECRET=... npx tsx examples/compose/two-agents.ts
 *
 * ACCORD_WORKER_URL (default ACCORD_URL) connects the worker elsewhere, e.g. to a second server
 * of the same cluster, so the example shows two servers syncing one workflow.
 *
 * With ACCORD_AUTH_SECRET each agent gets its own token (write access to this one workflow),
 * minted here the way `accord token` does; without it the server must run without auth.
 */
import { mintToken } from '../../server/http/auth.ts'
import { openWorkflow } from '../../src/node/index.ts'

interface Task { id: number, title: string, status: 'todo' | 'doing' | 'done' }
interface Board { tasks?: Task[] }

const url = process.env.ACCORD_URL ?? 'ws://127.0.0.1:1234'
const workerUrl = process.env.ACCORD_WORKER_URL ?? url
const secret = process.env.ACCORD_AUTH_SECRET
const workflow = process.env.ACCORD_WORKFLOW ?? `compose-plan-${Date.now()}`
const TITLES = ['write the spec', 'build the feature', 'ship it']

const watchdog = setTimeout(() => {
  console.error(`two agents did not finish within 30 s: planner sees ${JSON.stringify(planner?.state)}, worker sees ${JSON.stringify(worker?.state)}`)
  process.exit(1)
}, 30_000)

const agent = async (agentId: string, url: string): Promise<ReturnType<typeof openWorkflow>> => {
  const token = secret === undefined ? undefined : await mintToken({ secret, agentId, scopes: [`write:${workflow}`], expiresIn: '10m' })
  const handle = openWorkflow(workflow, { url, agentId, token })
  await handle.whenSynced({ timeoutMs: 20_000 })
  return handle
}

let planner: Awaited<ReturnType<typeof agent>> | undefined
let worker: Awaited<ReturnType<typeof agent>> | undefined
planner = await agent('planner', url)
worker = await agent('worker', workerUrl)
const board = (h: typeof planner): Board => h.state as Board
const allDone = (h: typeof planner): boolean => {
  const tasks = board(h).tasks ?? []
  return tasks.length === TITLES.length && tasks.every(t => t.status === 'done')
}

const done = new Promise<void>(resolve => {
  const check = (): void => { if (allDone(planner) && allDone(worker)) resolve() }
  planner.subscribe(check)
  worker.subscribe(check)
})

// The worker finishes every task the planner adds (one update per task).
worker.subscribe((change: { local: boolean }) => {
  if (change.local) return
  for (const task of board(worker).tasks ?? []) {
    if (task.status === 'done') continue
    worker.update((d: Board) => {
      const t = d.tasks?.find(x => x.id === task.id)
      if (t !== undefined) t.status = 'done'
    })
  }
})

TITLES.forEach((title, i) => {
  planner.update((d: Board) => {
    d.tasks ??= []
    d.tasks.push({ id: i + 1, title, status: 'todo' })
  }, { description: `add task ${i + 1}` })
})

await done
console.log(JSON.stringify({ ok: true, workflow, tasks: board(planner).tasks }))
clearTimeout(watchdog)
await Promise.all([planner.close(), worker.close()])
