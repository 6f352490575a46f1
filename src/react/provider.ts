/**
 * The React context that hands a `WorkflowRegistry` to the hooks below it.
 *
 *   const registry = createWorkflowRegistry({ url: 'wss://accord.example', agentId: 'viewer' })
 *   createRoot(el).render(createElement(WorkflowProvider, { registry }, createElement(App)))
 *
 * The app owns the registry (make it once, outside render; `registry.close()` on teardown), so
 * StrictMode's double mount and remounting the provider never reopen connections.
 */
import { createContext, createElement, useContext, type ReactNode } from 'react'
import { AccordError } from '../sdk.ts'
import type { WorkflowRegistry } from './registry.ts'

const RegistryContext = createContext<WorkflowRegistry | null>(null)

export interface WorkflowProviderProps {
  registry: WorkflowRegistry
  children?: ReactNode
}

export const WorkflowProvider = ({ registry, children }: WorkflowProviderProps): ReactNode =>
  createElement(RegistryContext.Provider, { value: registry }, children)

/** The registry of the nearest `<WorkflowProvider>`; a typed error without one. */
export const useWorkflowRegistry = (): WorkflowRegistry => {
  const registry = useContext(RegistryContext)
  if (registry === null) throw new AccordError('INVALID_REQUEST', 'Accord hooks need a <WorkflowProvider registry={createWorkflowRegistry(...)}> above them')
  return registry
}
