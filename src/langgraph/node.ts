/**
 * `@accord-state/accord/langgraph` under the `node` condition: the saver bound to the Node SDK
 * (`ws` as WebSocket, since Node 20 has no global one).
 *
 *   import { AccordSaver } from '@accord-state/accord/langgraph'
 *   const saver = new AccordSaver({ url: 'ws://127.0.0.1:1234', agentId: 'planner' })
 */
import { openWorkflow } from '../node/index.ts'
import { AccordCheckpointSaver, type AccordSaverOptions } from './saver.ts'

export { AccordCheckpointSaver, SaverConfigError, type AccordSaverOptions } from './saver.ts'
export { InvalidThreadIdError, threadToWorkflowId, workflowIdToThread } from './thread-id.ts'
export * from './records.ts'

export class AccordSaver extends AccordCheckpointSaver {
  constructor (options: AccordSaverOptions) {
    super({ ...options, openWorkflow })
  }
}
