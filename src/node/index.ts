/**
 * The SDK for Node: the package's `.` entry under the `node` condition and its `./node` entry.
 * Same API as the browser entry; Node 20 has no global WebSocket, so `ws` is the default, and
 * `persistence: './cache-dir'` keeps the document in a local LevelDB store (see cache.ts).
 *
 *   import { openWorkflow } from '@accord-state/accord'
 *   const wf = openWorkflow('release-42', { url: 'ws://127.0.0.1:1234', agentId: 'worker', persistence: './cache' })
 */
import { createOpenWorkflow } from '../client/workflow.ts'
import { attachPersistence } from './cache.ts'
import WebSocket from './websocket.ts'

export * from '../sdk.ts'

/** Opens a workflow handle; it connects in the background (see `whenSynced`). */
export const openWorkflow = createOpenWorkflow({ WebSocket, attachPersistence })
