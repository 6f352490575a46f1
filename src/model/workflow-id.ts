import { InvalidWorkflowIdError } from './errors.ts'

/**
 * Workflow ids appear in URLs and storage keys, so they are restricted to a URL-safe alphabet
 * without the key separator ('!') or '/'.
 */
export const WORKFLOW_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

export const isValidWorkflowId = (id: string): boolean => WORKFLOW_ID_PATTERN.test(id)

export const assertWorkflowId = (id: string): string => {
  if (!isValidWorkflowId(id)) throw new InvalidWorkflowIdError(id)
  return id
}
