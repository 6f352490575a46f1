/**
 * y-websocket's WebsocketProvider adds one `process.on('exit')` listener per provider in Node
 * (to clear its presence on exit), so an agent with 11 workflows open gets Node's
 * MaxListenersExceededWarning. The SDK closes its providers itself, and the server drops a
 * closed socket's presence anyway, so the handle removes that listener right after creating
 * the provider; `provider.destroy()` removing it again is harmless.
 *
 *   const provider = new WebsocketProvider(url, id, doc)
 *   dropExitListener(provider)
 */
import type { WebsocketProvider } from 'y-websocket'

interface ProcessLike { off?: (event: string, listener: (...args: unknown[]) => void) => unknown }

export const dropExitListener = (provider: WebsocketProvider): void => {
  const handler = (provider as unknown as { _exitHandler?: (...args: unknown[]) => void })._exitHandler
  // Browsers have no process (and bundlers may shim one without `off`).
  const proc = (globalThis as { process?: ProcessLike }).process
  if (typeof handler === 'function' && typeof proc?.off === 'function') proc.off('exit', handler)
}
