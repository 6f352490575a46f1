/**
 * `@accord-state/accord/langgraph` under the `browser`/`default` conditions: the saver bound to
 * the browser SDK (the global WebSocket). Node resolves `node.ts` instead.
 *
 *   import { AccordSaver } from '@accord-state/accord/langgraph'
 *   const saver = new AccordSaver({ url: 'wss://accord.example', token })
 */
import { openWorkflow } from '../index.ts'
import { AccordCheckpointSaver, type AccordSaverOptions } from './saver.ts'

export { AccordCheckpointSaver, SaverConfigError, type AccordSaverOptions } from './saver.ts'
export { InvalidThreadIdError, threadToWorkflowId, workflowIdToThread } from './thread-id.ts'
export * from './records.ts'

export class AccordSaver extends AccordCheckpointSaver {
  constructor (options: AccordSaverOptions) {
    super({ ...options, openWorkflow })
  }
}
