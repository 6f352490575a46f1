// The React example's page: a shared task list. Bundled by serve.ts with esbuild from the
// package's own browser build (dist/src/react/index.js, dist/src/index.js) as an app would.
// No JSX so it runs without a compile step other than bundling.
import { StrictMode, createElement as h, useState } from 'react'
import { createRoot } from 'react-dom/client'
import { WorkflowProvider, createWorkflowRegistry, useWorkflow, useWorkflowState } from '@accord-state/accord/react'
import config from '/config.js'

const params = new URLSearchParams(location.search)
const workflowId = params.get('workflow') ?? 'demo'
const agentId = params.get('agent') ?? `browser-${Math.floor(Math.random() * 1000)}`

// One registry for the page: components asking for the same workflow share one handle.
const registry = createWorkflowRegistry({ url: config.url, agentId })

const Status = () => {
  const { status, error } = useWorkflow(workflowId)
  return h('p', { id: 'status', 'data-status': status }, error === null ? status : `${status}: ${error.message}`)
}

const Title = () => {
  const { workflow } = useWorkflow(workflowId)
  const title = useWorkflowState(workflow, s => s.title)
  return h('h1', { id: 'title' }, title ?? 'Untitled workflow')
}

const Task = ({ workflow, index }) => {
  // Re-renders only when this task changes: other tasks keep their identity (structural sharing).
  const task = useWorkflowState(workflow, s => s.tasks?.[index])
  if (task === undefined) return null
  const toggle = () => workflow.patch([{ op: 'replace', path: `/tasks/${index}/done`, value: !task.done }], { description: `toggle ${task.title}` })
  return h('li', { className: task.done ? 'done' : '' },
    h('label', null, h('input', { type: 'checkbox', checked: task.done, onChange: toggle }), ' ', task.title))
}

const Tasks = () => {
  const { workflow } = useWorkflow(workflowId)
  const count = useWorkflowState(workflow, s => s.tasks?.length ?? 0)
  const [draft, setDraft] = useState('')
  if (workflow === null) return h('p', null, 'connecting...')
  const add = event => {
    event.preventDefault()
    if (draft.trim() === '') return
    workflow.update(s => { (s.tasks ??= []).push({ title: draft.trim(), done: false }) }, { description: `add ${draft.trim()}` })
    setDraft('')
  }
  return h('section', null,
    h('ul', { id: 'tasks' }, Array.from({ length: count }, (_, i) => h(Task, { key: i, workflow, index: i }))),
    h('form', { onSubmit: add },
      h('input', { id: 'new-task', value: draft, placeholder: 'new task', onChange: e => setDraft(e.target.value) }),
      h('button', { type: 'submit' }, 'Add')))
}

const App = () => h(WorkflowProvider, { registry }, h(Title), h(Status), h(Tasks),
  h('p', { className: 'who' }, `workflow ${workflowId} as ${agentId}`))

createRoot(document.getElementById('root')).render(h(StrictMode, null, h(App)))
