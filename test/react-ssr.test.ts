/**
 * Server rendering of the React hooks on Node (no DOM, no global WebSocket in Node 20):
 * `renderToString` renders the idle snapshot and never opens a socket or a handle.
 */
import { describe, expect, it } from 'vitest'
import { createElement as h, StrictMode, type ReactNode } from 'react'
import { renderToString } from 'react-dom/server'
import { WorkflowProvider, createWorkflowRegistry, useWorkflow, useWorkflowState } from '../src/react/index.ts'
import type { WorkflowHandle } from '../src/index.ts'

describe('react server rendering', () => {
  it('renders without touching WebSocket', async () => {
    let constructed = 0
    // Throws if anything tries to connect: server rendering must not.
    class NoSocket {
      constructor () {
        constructed++
        throw new Error('server rendering opened a WebSocket')
      }
    }
    let opened = 0
    const registry = createWorkflowRegistry({
      url: 'ws://127.0.0.1:9', // nothing listens there; nothing may try
      agentId: 'ssr',
      WebSocket: NoSocket as unknown as typeof WebSocket,
      open: () => { opened++; throw new Error('server rendering opened a handle') }
    })
    const App = (): ReactNode => {
      const { workflow, state, status, error } = useWorkflow('ssr-demo')
      const tasks = useWorkflowState(workflow as WorkflowHandle<{ tasks?: string[] }> | null, s => s.tasks)
      return h('p', null, `${status}|${String(workflow)}|${String(state)}|${String(error)}|${String(tasks)}`)
    }
    const html = renderToString(h(StrictMode, null, h(WorkflowProvider, { registry }, h(App))))
    expect(html).toBe('<p>connecting|null|undefined|null|undefined</p>')
    expect(constructed).toBe(0)
    expect(opened).toBe(0)
    expect(registry.size).toBe(0)
    expect(typeof (globalThis as { WebSocket?: unknown }).WebSocket).toBe('undefined')

    // The default registry (the SDK's browser openWorkflow, no WebSocket anywhere) renders too.
    const plain = createWorkflowRegistry({ url: 'ws://127.0.0.1:9', agentId: 'ssr' })
    expect(renderToString(h(WorkflowProvider, { registry: plain }, h(App)))).toContain('connecting|null')
    expect(plain.size).toBe(0)
    await Promise.all([registry.close(), plain.close()])
  })
})
