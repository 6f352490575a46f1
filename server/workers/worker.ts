/**
 * One worker of `accord serve --workers N`: a whole Accord server (createServer) over its own
 * shard, listening on a private Unix socket for the requests the primary relays, and adopting
 * the WebSocket connections the primary hands over with their first bytes. It stops when the
 * primary says so, on SIGINT/SIGTERM, or when the primary is gone (the IPC channel closed).
 *
 *   const code = await runWorker(async () => createServer({ ...options, socketPath: identity.socketPath }))
 */
import { rmdir } from 'node:fs/promises'
import type { Socket } from 'node:net'
import type { AccordServer } from '../server.ts'
import { FromWorkerSchema, ToWorkerSchema, type FromWorker } from './messages.ts'

const say = (message: FromWorker): void => {
  process.send?.(FromWorkerSchema.parse(message))
}

export interface WorkerHooks {
  /** Releases what makeServer opened besides the server (a PostgreSQL pool). */
  release?: () => Promise<void>
  /** Turns a startup failure into the error to report (an unreachable Redis, say). */
  describe?: (err: unknown) => unknown
  /** The primary's socket directory: removed by the last worker out, even after the primary was killed. */
  socketDir?: string
}

export const runWorker = async (makeServer: () => Promise<AccordServer>, hooks: WorkerHooks = {}): Promise<number> => {
  const release = hooks.release ?? (async () => {})
  let server: AccordServer
  try {
    server = await makeServer()
    await server.listen()
  } catch (thrown) {
    const err = hooks.describe?.(thrown) ?? thrown
    await release().catch(() => {})
    const exitCode = (err as { exitCode?: number }).exitCode ?? 1
    const code = (err as { code?: string }).code
    const message = (err as Error).message
    say({ type: 'failed', message: code !== undefined && !message.includes(code) ? `${code}: ${message}` : message, exitCode })
    process.disconnect?.()
    return exitCode
  }
  const stopped = new Promise<void>(resolve => {
    const stop = (): void => { resolve() }
    process.on('message', (raw: unknown, handle: unknown) => {
      const message = ToWorkerSchema.safeParse(raw)
      if (!message.success) return
      if (message.data.type === 'stop') stop()
      else if (handle !== undefined) server.adopt(handle as Socket, Buffer.from(message.data.head, 'base64'))
    })
    process.once('disconnect', stop)
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  say({ type: 'ready' })
  await stopped
  const flushed = server.loadedWorkflows().length
  await server.close()
  await release()
  // Fails while another worker's socket is still there: the last one out removes it.
  if (hooks.socketDir !== undefined) await rmdir(hooks.socketDir).catch(() => {})
  if (process.connected) say({ type: 'stopped', flushed })
  process.disconnect?.()
  return 0
}
