/**
 * A workflow, live, through the package's own browser SDK (one read-mostly handle named
 * `inspector`): its state, the paths the last changes touched (for a moment), who is connected
 * (awareness), the agents' lifecycle, tasks and session, and the newest persisted version.
 * Renders are coalesced to one per animation frame, so a busy workflow cannot flood the page.
 *
 *   const live = useLiveWorkflow('wf-1', token)
 *   live.root; live.changed; live.presence; live.runtime; live.head
 */
import { useEffect, useState } from 'preact/hooks'
import type * as Y from 'yjs'
import { openWorkflow, readRuntime, type RuntimeState, type WorkflowHandle } from '../index.ts'
import { stateRoot } from '../model/json-yjs.ts'

/** How long a changed path stays highlighted. */
export const FLASH_MS = 1500
export const INSPECTOR_AGENT = 'inspector'

export interface Peer {
  clientId: number
  agentId: string
}

export interface LiveWorkflow {
  synced: boolean
  /** The document's state root, read by the tree only as far as it is open (never all of it as JSON). */
  root: Y.Map<unknown> | null
  changed: Set<string>
  presence: Peer[]
  runtime: RuntimeState | null
  /** The newest persisted version the page knows of (0 before the first one arrives). */
  head: number
}

const EMPTY: LiveWorkflow = { synced: false, root: null, changed: new Set(), presence: [], runtime: null, head: 0 }

const wsUrl = (): string => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`

export const useLiveWorkflow = (id: string, token: string | null, initialHead: number): LiveWorkflow => {
  const [live, setLive] = useState<LiveWorkflow>(EMPTY)
  useEffect(() => {
    const handle: WorkflowHandle = openWorkflow(id, { url: wsUrl(), agentId: INSPECTOR_AGENT, ...(token === null ? {} : { token }) })
    const flashes = new Map<string, number>()
    let head = initialHead
    let frame = 0
    let closed = false
    const render = (): void => {
      frame = 0
      if (closed) return
      const now = Date.now()
      for (const [path, at] of flashes) if (now - at > FLASH_MS) flashes.delete(path)
      const me = handle.doc.clientID
      const presence: Peer[] = []
      handle.provider.awareness.getStates().forEach((s, clientId) => {
        const agent = (s as { agent?: { id?: unknown } }).agent
        if (clientId !== me) presence.push({ clientId, agentId: typeof agent?.id === 'string' ? agent.id : `client:${clientId}` })
      })
      presence.sort((a, b) => a.agentId.localeCompare(b.agentId))
      setLive({ synced: handle.synced, root: handle.synced ? stateRoot(handle.doc) : null, changed: new Set(flashes.keys()), presence, runtime: readRuntime(handle.doc), head })
    }
    const schedule = (): void => { if (frame === 0 && !closed) frame = requestAnimationFrame(render) }
    const unsubscribeChanges = handle.subscribe(change => {
      const now = Date.now()
      for (const op of change.ops) flashes.set(op.path, now)
      schedule()
    })
    // Records name the persisted versions (the timeline's head), in order, across reconnects.
    const records = handle.subscribe({ after: initialHead }, record => {
      head = Math.max(head, record.version)
      schedule()
    })
    handle.doc.on('update', schedule)
    handle.provider.awareness.on('change', schedule)
    handle.whenSynced().then(schedule, () => {})
    // Expire highlights even when nothing else changes, and keep lease countdowns current (once a second).
    let ticks = 0
    const sweep = setInterval(() => { if (flashes.size > 0 || ++ticks % 2 === 0) schedule() }, FLASH_MS / 3)
    return () => {
      closed = true
      clearInterval(sweep)
      if (frame !== 0) cancelAnimationFrame(frame)
      unsubscribeChanges()
      records()
      void handle.close()
    }
  }, [id, token])
  return live
}
