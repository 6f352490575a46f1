/**
 * What differs between the platforms the SDK runs on: the WebSocket implementation and where a
 * handle keeps its document offline. Each entry (`src/index.ts` for browsers, `src/node/index.ts`
 * for Node) passes its own to `createOpenWorkflow`, so neither bundles the other's code.
 */
import type { AttachPersistence } from './persistence.ts'

export interface Platform {
  /** Used when the caller passes no `WebSocket` option; undefined where the platform has none. */
  WebSocket: typeof globalThis.WebSocket | undefined
  attachPersistence: AttachPersistence
}
