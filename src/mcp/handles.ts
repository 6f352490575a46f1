/**
 * One SDK handle per workflow an MCP session touches, opened on first use and kept open (its
 * record subscription feeds resource notifications; its history and runtime calls are RPCs).
 * A workflow is checked to exist first, so naming an unknown one never creates it.
 *
 *   const handles = createHandles({ url, agentId, api, openWorkflow })
 *   const wf = await handles.get('release-42')   // NOT_FOUND when it does not exist
 *   await handles.close()
 */
import { ClosedError } from '../model/errors.ts'
import { assertWorkflowId } from '../model/workflow-id.ts'
import type { OpenWorkflowOptions, WorkflowHandle } from '../client/workflow.ts'
import type { HttpApi } from './http-api.ts'

export type OpenWorkflow = (id: string, options: OpenWorkflowOptions) => WorkflowHandle

export interface HandlesOptions {
  url: string
  agentId: string
  token?: string
  api: HttpApi
  openWorkflow: OpenWorkflow
  /** How long the first sync of a handle may take (default 10000 ms). */
  syncTimeoutMs?: number
}

export interface Handles {
  get: (workflowId: string) => Promise<WorkflowHandle>
  close: () => Promise<void>
}

export const createHandles = (options: HandlesOptions): Handles => {
  const open = new Map<string, Promise<WorkflowHandle>>()
  let closed = false

  const start = async (id: string): Promise<WorkflowHandle> => {
    await options.api.requireWorkflow(id)
    const handle = options.openWorkflow(id, { url: options.url, agentId: options.agentId, token: options.token })
    // A final close (workflow deleted, token revoked) drops the handle: the next call opens a fresh one.
    handle.provider.on('closed', () => {
      open.delete(id)
      void handle.close()
    })
    try {
      await handle.whenSynced({ timeoutMs: options.syncTimeoutMs ?? 10_000 })
    } catch (err) {
      await handle.close()
      throw err
    }
    return handle
  }

  return {
    get: async id => {
      if (closed) throw new ClosedError('MCP session')
      assertWorkflowId(id)
      let pending = open.get(id)
      if (pending === undefined) {
        pending = start(id)
        open.set(id, pending)
        pending.catch(() => { if (open.get(id) === pending) open.delete(id) })
      }
      return await pending
    },
    close: async () => {
      closed = true
      const all = Array.from(open.values())
      open.clear()
      await Promise.all(all.map(p => p.then(h => h.close(), () => {})))
    }
  }
}
