/**
 * The client side of Accord's protocol extension, riding on a stock y-websocket provider:
 * requests/responses (history, snapshots, restore, forks, subscriptions), descriptions that
 * travel ahead of an update, and pushed change records. See protocol.ts for the wire format.
 */
import type { WebsocketProvider } from 'y-websocket'
import type * as decoding from 'lib0/decoding'
import { AccordError, TimeoutError } from '../model/errors.ts'
import { MessageType, encodeFramed, readFramed } from '../model/protocol.ts'
import type { ChangeMeta } from '../model/schema.ts'

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
  message: Uint8Array
  sent: boolean
}

export interface Extension {
  request: <T>(method: string, params?: Record<string, unknown>, timeoutMs?: number) => Promise<T>
  /** Sends a description for the next update, if connected (it cannot travel otherwise). */
  describe: (description: string | undefined, meta: ChangeMeta | undefined) => void
  destroy: () => void
}

type Handler = (encoder: unknown, decoder: decoding.Decoder) => void

export interface RemoteOrigin {
  author: string
  description?: string
}

export const attachExtension = (
  provider: WebsocketProvider,
  onEvent: (subscription: number, body: unknown) => void,
  onConnected: () => void,
  onOrigin: (origin: RemoteOrigin) => void
): Extension => {
  let nextId = 1
  const pending = new Map<number, Pending>()
  const handlers = provider.messageHandlers as unknown as Handler[]

  const connected = (): boolean => provider.wsconnected && provider.ws !== null && provider.ws.readyState === 1

  handlers[MessageType.response] = (_enc, decoder) => {
    const { id, body } = readFramed(decoder, true)
    const p = pending.get(id)
    if (p === undefined) return
    pending.delete(id)
    clearTimeout(p.timer)
    const reply = body as { result?: unknown, error?: { code: string, message: string, details?: unknown } }
    if (reply.error !== undefined) p.reject(new AccordError(reply.error.code as never, reply.error.message, reply.error.details))
    else p.resolve(reply.result)
  }
  handlers[MessageType.origin] = (_enc, decoder) => {
    onOrigin(readFramed(decoder, false).body as RemoteOrigin)
  }
  handlers[MessageType.event] = (_enc, decoder) => {
    const { id, body } = readFramed(decoder, true)
    onEvent(id, body)
  }

  const flush = (): void => {
    for (const p of pending.values()) {
      if (!p.sent && connected()) {
        provider.ws?.send(p.message)
        p.sent = true
      }
    }
  }

  const onStatus = ({ status }: { status: string }): void => {
    if (status === 'connected') {
      flush()
      onConnected()
    } else if (status === 'disconnected') {
      // A request in flight may or may not have run; only the caller can decide to retry it.
      for (const [id, p] of pending) {
        if (!p.sent) continue
        pending.delete(id)
        clearTimeout(p.timer)
        p.reject(new AccordError('WORKFLOW_UNAVAILABLE', 'connection lost before the server answered'))
      }
    }
  }
  provider.on('status', onStatus)

  const request = <T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new TimeoutError(`reply to ${method}`, timeoutMs))
      }, timeoutMs)
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, message: encodeFramed(MessageType.request, id, { method, params }), sent: false })
      flush()
    })

  const describe = (description: string | undefined, meta: ChangeMeta | undefined): void => {
    if ((description === undefined && meta === undefined) || !connected()) return
    provider.ws?.send(encodeFramed(MessageType.describe, null, { description, meta }))
  }

  const destroy = (): void => {
    provider.off('status', onStatus)
    for (const p of pending.values()) {
      clearTimeout(p.timer)
      p.reject(new AccordError('CLOSED', 'workflow handle closed'))
    }
    pending.clear()
  }

  return { request, describe, destroy }
}
