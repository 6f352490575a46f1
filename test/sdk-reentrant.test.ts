/**
 * Updates made from inside a subscribe callback (an agent reacting to another's change, as the
 * two-agent example's worker does). Yjs runs the observers of a transaction made inside another
 * transaction's observers only afterwards, so a handle that built each draft from its cached
 * snapshot wrote stale state back: of several updates in one callback only the last survived.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './helpers/server.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'

interface Board { tasks?: Array<{ id: number, status: string }> }

let srv: TestServer | null = null
afterEach(async () => {
  await closeClients()
  await srv?.stop()
  srv = null
})

const allDone = (state: unknown): boolean => {
  const tasks = (state as Board).tasks ?? []
  return tasks.length === 3 && tasks.every(t => t.status === 'done')
}

describe('updates from inside a subscribe callback', () => {
  it('several updates in one callback all survive, locally and on every peer', async () => {
    srv = await startServer()
    const planner = sdkAgent(srv.url, 'wf-reentrant', 'planner')
    const worker = sdkAgent(srv.url, 'wf-reentrant', 'worker')
    await Promise.all([planner.whenSynced(), worker.whenSynced()])
    const stale: number[] = []
    worker.subscribe(change => {
      if (change.local) return
      for (const task of (worker.state as Board).tasks ?? []) {
        if (task.status === 'done') continue
        worker.update(d => {
          const t = (d as Board).tasks?.find(x => x.id === task.id)
          if (t !== undefined) t.status = 'done'
        })
        // Each update sees the ones before it, even before their observers ran.
        if ((worker.state as Board).tasks?.find(x => x.id === task.id)?.status !== 'done') stale.push(task.id)
      }
    })
    for (const id of [1, 2, 3]) planner.update(d => { (d as Board).tasks ??= []; (d as Board).tasks?.push({ id, status: 'todo' }) })
    await waitFor(() => allDone(planner.state) && allDone(worker.state))
    expect(planner.state).toEqual(worker.state)
    expect(stale).toEqual([])
  })
})
