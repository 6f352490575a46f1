/**
 * `@accord-state/accord/react`: React hooks over the SDK (React 18+; built and tested with 19).
 * Browser-facing: no Node APIs; handles open through the SDK's browser `openWorkflow` unless the
 * registry is given another `open`.
 *
 *   import { createWorkflowRegistry, WorkflowProvider, useWorkflow, useWorkflowState } from '@accord-state/accord/react'
 */
export { createWorkflowRegistry, IDLE_SNAPSHOT } from './registry.ts'
export type { WorkflowRegistry, WorkflowRegistryOptions, WorkflowEntry, WorkflowLease, WorkflowSnapshot, WorkflowStatus, UseWorkflowOptions } from './registry.ts'
export { WorkflowProvider, useWorkflowRegistry } from './provider.ts'
export type { WorkflowProviderProps } from './provider.ts'
export { useWorkflow, useWorkflowState } from './hooks.ts'
