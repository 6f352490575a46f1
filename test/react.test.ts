// @vitest-environment jsdom
/**
 * `@accord-state/accord/react` in React 19 + Testing Library (jsdom) against a real server:
 * shared handles, selective re-renders on remote edits, unmount closes, StrictMode's double
 * mount opens one connection, typed errors. jsdom has no WebSocket in Node 20: `ws` is passed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { StrictMode, createElement as h, type ReactNode } from 'react'
import { act, cleanup, render, screen, waitFor as rtlWaitFor } from '@testing-library/react'
import { renderToString } from 'react-dom/server'
import WS from 'ws'
import { startServer, removeTempDirs, type TestServer } from './helpers/server.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { AccordError, type WorkflowHandle } from '../src/index.ts'
import { WorkflowProvider, createWorkflowRegistry, useWorkflow, useWorkflowState, type WorkflowRegistry } from '../src/react/index.ts'

let srv: TestServer
let sockets = 0
/** `ws`, counting the connections the hooks open. */
class CountingWebSocket extends WS {
  constructor (...args: ConstructorParameters<typeof WS>) {
    super(...args)
    sockets++
  }
}

const registries: WorkflowRegistry[] = []
const makeRegistry = (): WorkflowRegistry => {
  const registry = createWorkflowRegistry({ url: srv.url, agentId: 'ui', WebSocket: CountingWebSocket as unknown as typeof WebSocket })
  registries.push(registry)
  return registry
}

beforeAll(async () => { srv = await startServer() })
afterEach(async () => {
  cleanup()
  await Promise.all(registries.splice(0).map(r => r.close()))
  await closeClients()
})
afterAll(async () => {
  await srv.stop()
  await removeTempDirs()
})

let counter = 0
const freshId = (): string => `react-${++counter}`

interface State { config?: { theme: string }, tasks?: Array<{ title: string, done: boolean }> }

/** A writer agent (Node SDK) that seeds the workflow and makes the remote edits. */
const seededWriter = async (id: string): Promise<WorkflowHandle> => {
  const writer = sdkAgent(srv.url, id, 'writer')
  await writer.whenSynced()
  writer.update(() => ({ config: { theme: 'dark' }, tasks: [{ title: 'a', done: false }, { title: 'b', done: false }] }))
  return writer
}

describe('react hooks', () => {
  it('two components share one handle; a remote edit re-renders only the one whose slice changed; unmount closes', async () => {
    const id = freshId()
    const writer = await seededWriter(id)
    const registry = makeRegistry()
    const before = sockets
    const renders = { config: 0, tasks: 0 }
    const handles = new Set<WorkflowHandle>()

    const Config = (): ReactNode => {
      const { workflow } = useWorkflow(id)
      if (workflow !== null) handles.add(workflow)
      const config = useWorkflowState(workflow as WorkflowHandle<State> | null, s => s.config)
      renders.config++
      return h('p', { 'data-testid': 'config' }, config?.theme ?? '-')
    }
    const Tasks = (): ReactNode => {
      const { workflow, status } = useWorkflow(id)
      if (workflow !== null) handles.add(workflow)
      const tasks = useWorkflowState(workflow as WorkflowHandle<State> | null, s => s.tasks)
      renders.tasks++
      return h('ul', { 'data-testid': 'tasks', 'data-status': status }, (tasks ?? []).map((t, i) => h('li', { key: i }, `${t.title}:${String(t.done)}`)))
    }
    const view = render(h(WorkflowProvider, { registry }, h(Config), h(Tasks)))

    await rtlWaitFor(() => { expect(screen.getByTestId('tasks').textContent).toBe('a:falseb:false') })
    await rtlWaitFor(() => { expect(screen.getByTestId('tasks').dataset.status).toBe('synced') })
    expect(screen.getByTestId('config').textContent).toBe('dark')
    expect(handles.size).toBe(1)
    expect(registry.size).toBe(1)
    expect(sockets - before).toBe(1)
    const handle = Array.from(handles)[0]!

    const seen = { ...renders }
    await act(async () => {
      writer.patch([{ op: 'replace', path: '/tasks/1/done', value: true }])
      await waitFor(() => (handle.state as State).tasks?.[1]?.done === true, { what: 'the UI handle sees the edit' })
    })
    await rtlWaitFor(() => { expect(screen.getByTestId('tasks').textContent).toBe('a:falseb:true') })
    expect(renders.tasks).toBeGreaterThan(seen.tasks)
    expect(renders.config).toBe(seen.config)

    const mid = { ...renders }
    await act(async () => {
      writer.patch([{ op: 'replace', path: '/config/theme', value: 'light' }])
      await waitFor(() => (handle.state as State).config?.theme === 'light', { what: 'the UI handle sees the theme' })
    })
    await rtlWaitFor(() => { expect(screen.getByTestId('config').textContent).toBe('light') })
    expect(renders.config).toBeGreaterThan(mid.config)
    expect(renders.tasks).toBe(mid.tasks)

    view.unmount()
    await waitFor(() => registry.size === 0, { what: 'the registry to drop the handle' })
    // Closed for real: edits now throw, the socket is gone.
    expect(() => handle.update(() => ({}))).toThrow(expect.objectContaining({ code: 'CLOSED' }))
    expect(handle.provider.ws).toBeNull()
  })

  it('a component that stays mounted keeps the shared handle open when the other unmounts', async () => {
    const id = freshId()
    await seededWriter(id)
    const registry = makeRegistry()
    const Viewer = ({ name }: { name: string }): ReactNode => {
      const { state } = useWorkflow(id)
      return h('p', { 'data-testid': name }, String((state as State | undefined)?.tasks?.length ?? '-'))
    }
    const App = ({ both }: { both: boolean }): ReactNode => h(WorkflowProvider, { registry }, h(Viewer, { name: 'one' }), both ? h(Viewer, { name: 'two' }) : null)
    const view = render(h(App, { both: true }))
    await rtlWaitFor(() => { expect(screen.getByTestId('two').textContent).toBe('2') })
    const handle = registry.acquire(id)
    const wf = handle.entry.getSnapshot().workflow!
    handle.release()
    view.rerender(h(App, { both: false }))
    // A release after that one, of another workflow: once it is dropped, a drop of ours would have run.
    const probe = registry.acquire(freshId())
    probe.release()
    await waitFor(() => registry.size === 1, { what: 'the later release to be dropped' })
    expect(registry.size).toBe(1)
    expect(wf.provider.ws).not.toBeNull()
    view.unmount()
    await waitFor(() => registry.size === 0, { what: 'close after the last unmount' })
  })

  it('StrictMode double mount opens one connection, and the state still renders', async () => {
    const id = freshId()
    await seededWriter(id)
    const registry = makeRegistry()
    const before = sockets
    const Tasks = (): ReactNode => {
      const { workflow, status } = useWorkflow(id)
      const count = useWorkflowState(workflow as WorkflowHandle<State> | null, s => s.tasks?.length ?? 0)
      return h('p', { 'data-testid': 'n' }, `${status}:${String(count)}`)
    }
    const view = render(h(StrictMode, null, h(WorkflowProvider, { registry }, h(Tasks))))
    await rtlWaitFor(() => { expect(screen.getByTestId('n').textContent).toBe('synced:2') })
    expect(sockets - before).toBe(1)
    expect(registry.size).toBe(1)
    view.unmount()
    await waitFor(() => registry.size === 0, { what: 'close after unmount' })
  })

  it('hydrates server-rendered markup without a mismatch, then opens the handle', async () => {
    const id = freshId()
    await seededWriter(id)
    const registry = makeRegistry()
    const App = (): ReactNode => {
      const { workflow, status } = useWorkflow(id)
      const n = useWorkflowState(workflow as WorkflowHandle<State> | null, s => s.tasks?.length)
      return h('p', { 'data-testid': 'hydrated' }, `${status}:${String(n ?? '-')}`)
    }
    const tree = h(StrictMode, null, h(WorkflowProvider, { registry }, h(App)))
    const before = sockets
    const html = renderToString(tree)
    expect(html).toBe('<p data-testid="hydrated">connecting:-</p>')
    expect(sockets).toBe(before)
    const container = document.createElement('div')
    container.innerHTML = html
    document.body.appendChild(container)
    const errors: unknown[] = []
    const onError = (e: ErrorEvent): void => { errors.push(e.error) }
    window.addEventListener('error', onError)
    try {
      render(tree, { container, hydrate: true, onRecoverableError: (err: unknown) => { errors.push(err) } } as Parameters<typeof render>[1])
      await rtlWaitFor(() => { expect(container.textContent).toBe('synced:2') })
    } finally {
      window.removeEventListener('error', onError)
    }
    expect(errors).toEqual([])
    expect(sockets - before).toBe(1)
  })

  it('derived selections keep their identity under an isEqual, and re-render when they change', async () => {
    const id = freshId()
    const writer = await seededWriter(id)
    const registry = makeRegistry()
    const seen: Array<string[] | undefined> = []
    let handle: WorkflowHandle | null = null
    const Open = (): ReactNode => {
      const { workflow } = useWorkflow(id)
      handle = workflow
      const open = useWorkflowState(
        workflow as WorkflowHandle<State> | null,
        s => (s.tasks ?? []).filter(t => !t.done).map(t => t.title),
        (a, b) => JSON.stringify(a) === JSON.stringify(b)
      )
      seen.push(open)
      return h('p', { 'data-testid': 'open' }, (open ?? []).join(','))
    }
    render(h(WorkflowProvider, { registry }, h(Open)))
    await rtlWaitFor(() => { expect(screen.getByTestId('open').textContent).toBe('a,b') })
    const count = seen.length
    // An edit elsewhere in the state: the filtered list is equal, so no re-render.
    await act(async () => {
      writer.patch([{ op: 'replace', path: '/config/theme', value: 'light' }])
      await waitFor(() => (handle?.state as State | undefined)?.config?.theme === 'light', { what: 'the edit arrives' })
    })
    expect(seen.length).toBe(count)
    await act(async () => { writer.patch([{ op: 'replace', path: '/tasks/0/done', value: true }]) })
    await rtlWaitFor(() => { expect(screen.getByTestId('open').textContent).toBe('b') })
  })

  it('reports bad options and a missing provider as typed errors', async () => {
    const registry = createWorkflowRegistry({ WebSocket: CountingWebSocket as unknown as typeof WebSocket })
    registries.push(registry)
    const Probe = ({ id }: { id: string }): ReactNode => {
      const { status, error, workflow } = useWorkflow(id, { url: srv.url, agentId: 'ui' })
      return h('p', { 'data-testid': 'probe' }, `${status}:${error?.code ?? ''}:${String(workflow === null)}`)
    }
    render(h(WorkflowProvider, { registry }, h(Probe, { id: 'not a valid id!' })))
    await rtlWaitFor(() => { expect(screen.getByTestId('probe').textContent).toBe('error:INVALID_WORKFLOW_ID:true') })
    cleanup()

    const NoUrl = (): ReactNode => {
      const { error } = useWorkflow('react-no-url')
      return h('p', { 'data-testid': 'nourl' }, error?.code ?? 'none')
    }
    render(h(WorkflowProvider, { registry }, h(NoUrl)))
    await rtlWaitFor(() => { expect(screen.getByTestId('nourl').textContent).toBe('INVALID_REQUEST') })
    cleanup()

    const Bare = (): ReactNode => { useWorkflow('x'); return null }
    let caught: unknown
    const onError = (e: ErrorEvent): void => { e.preventDefault() }
    window.addEventListener('error', onError)
    try {
      render(h(Bare))
    } catch (err) {
      caught = err
    } finally {
      window.removeEventListener('error', onError)
    }
    expect(caught).toBeInstanceOf(AccordError)
    expect((caught as AccordError).code).toBe('INVALID_REQUEST')
  })

  it('a workflow the server refuses ends in status error with the typed reason', async () => {
    const authed = await startServer({ auth: { secret: 'react-test-secret' } })
    try {
      const registry = createWorkflowRegistry({ url: authed.url, agentId: 'ui', WebSocket: CountingWebSocket as unknown as typeof WebSocket })
      registries.push(registry)
      const id = freshId()
      const Probe = (): ReactNode => {
        const { status, error } = useWorkflow(id, { token: 'not-a-jwt' })
        return h('p', { 'data-testid': 'probe' }, `${status}:${error?.code ?? ''}`)
      }
      render(h(WorkflowProvider, { registry }, h(Probe)))
      await rtlWaitFor(() => { expect(screen.getByTestId('probe').textContent).toBe('error:WORKFLOW_UNAVAILABLE') }, { timeout: 15_000 })
      cleanup()
      await registry.close()
    } finally {
      await authed.stop()
    }
  })
})
