/**
 * A workflow, live: the page's view of a live session of the data worker (worker.ts), which
 * holds the package's own browser SDK handle (named `inspector`) and the Y.Doc off the page's
 * thread. The page gets the open part of the state tree, the paths the last changes touched
 * (highlighted for a moment), who is connected (awareness), the agents' lifecycle, tasks and
 * session, and the newest persisted version. Renders are coalesced to one per animation frame,
 * so a busy workflow cannot flood the page.
 *
 *   const live = useLiveWorkflow(remote, 'wf-1', token, 0)
 *   live.tree; live.changed; live.presence; live.runtime; live.head
 */
import { useEffect, useState } from 'preact/hooks'
import type { RuntimeState } from '../index.ts'
import type { Peer } from './protocol.ts'
import { errorFrom, type Remote, type TreeSource } from './remote.ts'

/** How long a changed path stays highlighted. */
export const FLASH_MS = 1500

export type { Peer }

export interface LiveWorkflow {
  synced: boolean
  /** The state tree, as far as it is open (null until the first sync). */
  tree: TreeSource | null
  changed: Set<string>
  presence: Peer[]
  runtime: RuntimeState | null
  /** The newest persisted version the page knows of. */
  head: number
}

const EMPTY: LiveWorkflow = { synced: false, tree: null, changed: new Set(), presence: [], runtime: null, head: 0 }

export const useLiveWorkflow = (remote: Remote, id: string, token: string | null, initialHead: number, onError: (err: unknown) => void): LiveWorkflow => {
  const [live, setLive] = useState<LiveWorkflow>(EMPTY)
  useEffect(() => {
    const flashes = new Map<string, number>()
    let news: Omit<LiveWorkflow, 'tree' | 'changed'> = { synced: false, presence: [], runtime: null, head: initialHead }
    let frame = 0
    let closed = false
    const session = remote.open({ type: 'live', id, token, after: initialHead }, m => {
      if (m.type === 'error') {
        onError(errorFrom(m.error))
        return
      }
      if (m.type !== 'live') return
      const now = Date.now()
      for (const path of m.changed) flashes.set(path, now)
      news = { synced: m.synced, presence: m.presence, runtime: m.runtime ?? news.runtime, head: Math.max(news.head, m.head) }
      schedule()
    })
    const render = (): void => {
      frame = 0
      if (closed) return
      const now = Date.now()
      for (const [path, at] of flashes) if (now - at > FLASH_MS) flashes.delete(path)
      setLive({ ...news, tree: news.synced ? session.tree : null, changed: new Set(flashes.keys()) })
    }
    const schedule = (): void => { if (frame === 0 && !closed) frame = requestAnimationFrame(render) }
    // Expire highlights even when nothing else changes, and keep lease countdowns current (once a second).
    let ticks = 0
    const sweep = setInterval(() => { if (flashes.size > 0 || ++ticks % 2 === 0) schedule() }, FLASH_MS / 3)
    return () => {
      closed = true
      clearInterval(sweep)
      if (frame !== 0) cancelAnimationFrame(frame)
      session.close()
    }
  }, [id, token])
  return live
}
