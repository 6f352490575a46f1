/**
 * One LangGraph thread as one Accord workflow handle, with writes that resolve only once the
 * server has stored them. The handle's record subscription delivers each version the server has
 * made durable; a version's snapshot carries the server's state vector, so a local write is
 * stored once some version's state vector covers this handle's clock after that write.
 *
 *   const thread = await openThread(openWorkflow, 'chat-1', { url, agentId: 'langgraph' }, 30_000)
 *   await thread.write(state => { state.langgraph = ... }, 'why')
 *   await thread.close()
 */
import * as Y from 'yjs'
import { fromBase64 } from 'lib0/buffer'
import type { OpenWorkflowOptions, WorkflowHandle } from '../client/workflow.ts'
import type { JsonObject } from '../model/json.ts'
import type { VersionRecord } from '../model/schema.ts'
import { ClosedError, TimeoutError, type AccordError } from '../model/errors.ts'

export type OpenWorkflow = (id: string, options: OpenWorkflowOptions) => WorkflowHandle

export interface Thread {
  readonly workflowId: string
  readonly handle: WorkflowHandle
  /** Current state (frozen JSON). */
  readonly state: JsonObject
  /** Resolves once this handle holds every version the server had stored when it was called. */
  fresh: () => Promise<void>
  /** One change (one Accord version); resolves once the server has stored it. */
  write: (fn: (draft: JsonObject) => void, description: string) => Promise<void>
  close: () => Promise<void>
}

interface Waiter { clock: number, resolve: () => void, reject: (err: Error) => void, timer: ReturnType<typeof setTimeout> }

export const openThread = async (openWorkflow: OpenWorkflow, workflowId: string, options: OpenWorkflowOptions, timeoutMs: number): Promise<Thread> => {
  const handle = openWorkflow(workflowId, options)
  const clientId = handle.doc.clientID
  let stored = 0
  let closed = false
  const waiters = new Set<Waiter>()
  const settle = (): void => {
    for (const w of waiters) {
      if (w.clock > stored) continue
      clearTimeout(w.timer)
      waiters.delete(w)
      w.resolve()
    }
  }
  const onRecord = (record: VersionRecord): void => {
    const clock = Y.decodeSnapshot(fromBase64(record.snapshot)).sv.get(clientId) ?? 0
    if (clock > stored) stored = clock
    settle()
  }
  const sub = handle.subscribe({}, onRecord)
  try {
    await Promise.all([handle.whenSynced({ timeoutMs }), withTimeout(sub.ready, timeoutMs, `subscription to ${workflowId}`)])
  } catch (err) {
    await handle.close()
    throw err
  }
  // Whatever this client id wrote before (none: ids are fresh per handle) is stored already.
  stored = Math.max(stored, Y.getState(handle.doc.store, clientId))

  const write = async (fn: (draft: JsonObject) => void, description: string): Promise<void> => {
    if (closed) throw new ClosedError(`LangGraph thread ${workflowId}`)
    handle.update(draft => { fn(draft) }, { description })
    const clock = Y.getState(handle.doc.store, clientId)
    if (clock <= stored) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(new TimeoutError(`the server storing a change of ${workflowId}`, timeoutMs))
      }, timeoutMs)
      const waiter: Waiter = { clock, resolve, reject, timer }
      waiters.add(waiter)
    })
  }

  // Another process's put is acknowledged once stored, but reaches this handle a moment later:
  // ask the server for its newest version and wait until the local document covers it.
  const covers = (sv: Map<number, number>): boolean => {
    for (const [client, clock] of sv) if (Y.getState(handle.doc.store, client) < clock) return false
    return true
  }
  // A read, so safe to repeat when the connection drops before the answer (the SDK reconnects).
  const newest = async (): Promise<VersionRecord | undefined> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        return (await handle.history({ limit: 1 }))[0]
      } catch (err) {
        if (closed || (err as AccordError).code !== 'WORKFLOW_UNAVAILABLE' || Date.now() > deadline) throw err
      }
    }
  }
  const fresh = async (): Promise<void> => {
    if (closed) throw new ClosedError(`LangGraph thread ${workflowId}`)
    const head = await newest()
    if (head === undefined) return
    const { sv } = Y.decodeSnapshot(fromBase64(head.snapshot))
    if (covers(sv)) return
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer)
        handle.doc.off('update', check)
        if (err === undefined) resolve()
        else reject(err)
      }
      const check = (): void => { if (covers(sv)) done() }
      const timer = setTimeout(() => { done(new TimeoutError(`workflow ${workflowId} catching up with the server`, timeoutMs)) }, timeoutMs)
      handle.doc.on('update', check)
    })
  }

  return {
    workflowId,
    handle,
    get state () { return handle.state },
    fresh,
    write,
    async close () {
      if (closed) return
      closed = true
      sub()
      for (const w of waiters) {
        clearTimeout(w.timer)
        w.reject(new ClosedError(`LangGraph thread ${workflowId}`))
      }
      waiters.clear()
      await handle.close()
    }
  }
}

const withTimeout = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => new Promise((resolve, reject) => {
  const timer = setTimeout(() => { reject(new TimeoutError(what, ms)) }, ms)
  promise.then(v => { clearTimeout(timer); resolve(v) }, (err: unknown) => { clearTimeout(timer); reject(err) })
})
