/**
 * What the primary of `accord serve --workers N` and its workers say to each other over the IPC
 * channel (child_process `send`), checked on receipt like every record that crosses a process.
 *
 *   primary -> worker   upgrade (with the socket as the message's handle) | stop
 *   worker  -> primary  ready | failed (startup refused: the error the primary prints) | stopped
 */
import { z } from 'zod'

/** The worker's identity, given in the environment variable WORKER_ENV as JSON. */
export const WorkerIdentitySchema = z.object({
  socketPath: z.string().min(1),
  /** This worker's LevelDB directory; null on a shared (PostgreSQL) or memory store. */
  dataDir: z.string().nullable()
})
export type WorkerIdentity = z.infer<typeof WorkerIdentitySchema>

export const WORKER_ENV = 'ACCORD_WORKER_OF'

export const ToWorkerSchema = z.discriminatedUnion('type', [
  /** A WebSocket upgrade read by the primary: `head` (base64) is every byte it read of it. */
  z.object({ type: z.literal('upgrade'), head: z.string() }),
  z.object({ type: z.literal('stop') })
])
export type ToWorker = z.infer<typeof ToWorkerSchema>

export const FromWorkerSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('failed'), message: z.string(), exitCode: z.number().int() }),
  z.object({ type: z.literal('stopped'), flushed: z.number().int().nonnegative() })
])
export type FromWorker = z.infer<typeof FromWorkerSchema>
