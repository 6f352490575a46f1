/**
 * LangGraph thread ids <-> Accord workflow ids, reversibly. A thread id that already is a valid
 * workflow id (UUIDs, `chat-42`, `team:run.7`) is used as it is, so `accord get <thread id>` works;
 * any other (spaces, slashes, non-ASCII, or one starting with the `b64.` marker itself) becomes
 * `b64.` + its base64url UTF-8 bytes. Ids whose encoding would not fit in 128 characters (over 93
 * UTF-8 bytes) are refused with `InvalidThreadIdError` rather than hashed, which could collide.
 *
 *   threadToWorkflowId('chat 1') // 'b64.Y2hhdCAx'
 *   workflowIdToThread('b64.Y2hhdCAx') // 'chat 1'
 */
import { toBase64UrlEncoded, fromBase64UrlEncoded } from 'lib0/buffer'
import { AccordError } from '../model/errors.ts'
import { isValidWorkflowId } from '../model/workflow-id.ts'

export const ENCODED_PREFIX = 'b64.'

/** A thread id that is not a string, is empty, or is too long to map to a workflow id. */
export class InvalidThreadIdError extends AccordError {
  constructor (threadId: unknown, reason: string) {
    super('INVALID_WORKFLOW_ID', `thread id ${JSON.stringify(String(threadId).slice(0, 200))} cannot be an Accord workflow id: ${reason}`, { threadId, reason })
    this.name = 'InvalidThreadIdError'
  }
}

export const threadToWorkflowId = (threadId: unknown): string => {
  if (typeof threadId !== 'string' || threadId === '') throw new InvalidThreadIdError(threadId, 'a thread id is a non-empty string')
  if (isValidWorkflowId(threadId) && !threadId.startsWith(ENCODED_PREFIX)) return threadId
  const id = ENCODED_PREFIX + toBase64UrlEncoded(new TextEncoder().encode(threadId))
  if (!isValidWorkflowId(id)) throw new InvalidThreadIdError(threadId, 'encoded it is longer than 128 characters (use at most 93 UTF-8 bytes, or only A-Z a-z 0-9 . _ - : up to 128)')
  return id
}

export const workflowIdToThread = (workflowId: string): string =>
  workflowId.startsWith(ENCODED_PREFIX)
    ? new TextDecoder().decode(fromBase64UrlEncoded(workflowId.slice(ENCODED_PREFIX.length)))
    : workflowId
