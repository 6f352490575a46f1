/**
 * The SDK for browsers (and any runtime with a global WebSocket): the package's `.` entry under
 * the `browser` and `default` conditions. Node gets `src/node/index.ts` under `node`, with `ws`
 * and the LevelDB offline cache; both export the same API.
 *
 *   import { openWorkflow } from '@accord-state/accord'
 *   const wf = openWorkflow('release-42', { url: 'wss://accord.example', agentId: 'viewer' })
 */
import { createOpenWorkflow } from './client/workflow.ts'
import { attachPersistence } from './client/indexeddb.ts'

export * from './sdk.ts'

/** Opens a workflow handle; it connects in the background (see `whenSynced`). */
export const openWorkflow = createOpenWorkflow({ WebSocket: globalThis.WebSocket, attachPersistence })
