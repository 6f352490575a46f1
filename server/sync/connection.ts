/**
 * One WebSocket: decodes y-websocket messages with y-protocols, enforces the message size cap and
 * keeps the socket alive with pings. Messages that arrive while the workflow is still loading
 * are buffered (bounded) and handled in order once it is attached.
 * Any malformed message closes this connection only (4400, reason logged).
 */
import type { WebSocket, RawData } from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import { CloseCodes, type CloseCode } from '../../src/model/close-codes.ts'
import { InvalidMessageError } from '../../src/model/errors.ts'
import { MessageType, encodeFramed, readFramed } from '../../src/model/protocol.ts'
import { ChangeMetaSchema, type ChangeMeta } from '../../src/model/schema.ts'
import type { Logger } from '../ops/log.ts'
import { ANONYMOUS, type Principal } from '../http/auth.ts'
import { encodeAwareness, type Peer } from './contracts.ts'
import type { Workflow } from './workflow.ts'
import { z } from 'zod'

export interface ConnectionOptions {
  maxMessageSize: number
  pingIntervalMs: number
  log: Logger
  /** Whether the client announced the Accord extension (messages >= 100). */
  extended: boolean
  onClose: (conn: Connection) => void
  /** Updates and awareness messages per second this connection may send, with a burst allowance. */
  rate?: { perSecond: number, burst: number }
  /** Handles an extension request; the result (or thrown AccordError) is sent back. */
  onRequest: (conn: Connection, body: unknown) => Promise<unknown>
}

const DescribeSchema = z.object({ description: z.string().max(2000).optional(), meta: z.optional(ChangeMetaSchema) })

let nextId = 1

/** Close reasons are limited to 123 bytes by RFC 6455. */
const closeReason = (code: CloseCode, detail?: string): string => {
  const text = detail === undefined ? code.reason : `${code.reason}: ${detail}`
  const bytes = Buffer.from(text)
  return bytes.length <= 123 ? text : bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD$/, '') + '...'
}

const toBytes = (data: RawData): Uint8Array =>
  Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data

export class Connection implements Peer {
  readonly id = nextId++
  readonly workflowId: string
  readonly extended: boolean
  /** Who is on the other end (set by authorize, before any message is handled). */
  principal: Principal = ANONYMOUS('anonymous')
  /** Paths this connection may write, or null when unrestricted. */
  writePaths: string[] | null = null
  private canWrite = true
  workflow: Workflow | null = null
  /** Change-record subscriptions of this connection, by id. */
  readonly subscriptions = new Map<number, () => void>()
  nextSubscription = 1
  private description: { description?: string, meta?: ChangeMeta } | undefined
  private readonly ws: WebSocket
  private readonly opts: ConnectionOptions
  private buffered: Uint8Array[] | null = []
  private bufferedBytes = 0
  private alive = true
  private pingTimer: ReturnType<typeof setInterval> | null = null
  private closed = false
  /** Token bucket for the update rate limit. */
  private tokens = 0
  private refilledAt = 0

  constructor (ws: WebSocket, workflowId: string, opts: ConnectionOptions) {
    this.ws = ws
    this.workflowId = workflowId
    this.opts = opts
    this.extended = opts.extended
    this.tokens = opts.rate?.burst ?? 0
    this.refilledAt = performance.now()
    ws.on('message', this.onMessage)
    ws.on('close', this.onSocketClose)
    ws.on('error', err => { opts.log.debug('socket error', { conn: this.id, error: err.message }) })
    ws.on('pong', () => { this.alive = true })
    this.pingTimer = setInterval(() => {
      if (!this.alive) {
        ws.terminate()
        return
      }
      this.alive = false
      ws.ping()
    }, opts.pingIntervalMs)
  }

  get isClosed (): boolean { return this.closed }

  /** Agent id recorded as the author of this connection's changes (from its token when auth is on). */
  get agentId (): string { return this.principal.agentId }

  authorize (principal: Principal): void {
    this.principal = principal
    this.canWrite = principal.can(this.workflowId, 'write')
    this.writePaths = principal.writePaths(this.workflowId)
  }

  /** What the peer announced (describe message) for its next update; taken by that update. */
  private takeAnnounced (): { description?: string, meta?: ChangeMeta } | undefined {
    const d = this.description
    this.description = undefined
    return d
  }

  /** Pushes an extension event (only to clients that announced the extension). */
  sendEvent (subscription: number, body: unknown): void {
    if (this.extended) this.send(encodeFramed(MessageType.event, subscription, body))
  }

  /** Joins the loaded workflow: sends our state vector and presence, then handles buffered input. */
  attach (workflow: Workflow): void {
    this.workflow = workflow
    workflow.addPeer(this)
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, MessageType.sync)
    syncProtocol.writeSyncStep1(enc, workflow.doc)
    this.send(encoding.toUint8Array(enc))
    const states = workflow.awareness.getStates()
    if (states.size > 0) this.send(encodeAwareness(workflow.awareness, Array.from(states.keys())))
    const buffered = this.buffered ?? []
    this.buffered = null
    for (const message of buffered) {
      if (this.closed) break
      this.handle(message)
    }
  }

  send (message: Uint8Array): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return
    this.ws.send(message, err => {
      if (err !== undefined && err !== null) this.close(CloseCodes.shuttingDown, 'send failed')
    })
  }

  close (code: CloseCode, detail?: string): void {
    if (this.closed) return
    this.ws.close(code.code, closeReason(code, detail))
    this.onSocketClose()
  }

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.closed) return
    this.alive = true
    const message = toBytes(data)
    if (message.length > this.opts.maxMessageSize) {
      this.reject(CloseCodes.tooLarge, `${message.length} > ${this.opts.maxMessageSize} bytes`)
      return
    }
    if (!isBinary) {
      this.reject(CloseCodes.badMessage, 'text frames are not part of the protocol')
      return
    }
    if (this.buffered !== null) {
      this.bufferedBytes += message.length
      if (this.bufferedBytes > this.opts.maxMessageSize * 4) {
        this.reject(CloseCodes.tooLarge, 'too much input while the workflow was loading')
        return
      }
      this.buffered.push(message)
      return
    }
    this.handle(message)
  }

  private reject (code: CloseCode, detail: string): void {
    this.opts.log.warn('closing connection', { conn: this.id, workflowId: this.workflowId, code: code.code, reason: code.reason, detail })
    this.close(code, detail)
  }

  /** Takes one token from the bucket; false when the connection is over its rate. */
  private withinRate (): boolean {
    const rate = this.opts.rate
    if (rate === undefined) return true
    const now = performance.now()
    this.tokens = Math.min(rate.burst, this.tokens + (now - this.refilledAt) / 1000 * rate.perSecond)
    this.refilledAt = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }

  private handle (message: Uint8Array): void {
    const workflow = this.workflow as Workflow
    try {
      const decoder = decoding.createDecoder(message)
      const type = decoding.readVarUint(decoder)
      // Sync step 1 only asks; updates (sync step 2 / update) and presence are what can flood.
      const writes = type === MessageType.awareness || (type === MessageType.sync && message[1] !== syncProtocol.messageYjsSyncStep1)
      if (writes && !this.withinRate()) {
        const rate = this.opts.rate as { perSecond: number, burst: number }
        this.reject(CloseCodes.rateLimited, `more than ${rate.perSecond} updates/s (burst ${rate.burst})`)
        return
      }
      switch (type) {
        case MessageType.sync:
          this.handleSync(decoder, workflow)
          break
        case MessageType.awareness:
          awarenessProtocol.applyAwarenessUpdate(workflow.awareness, decoding.readVarUint8Array(decoder), this)
          break
        case MessageType.queryAwareness:
          this.send(encodeAwareness(workflow.awareness, Array.from(workflow.awareness.getStates().keys())))
          break
        case MessageType.auth:
          break
        case MessageType.describe:
          if (!this.extended) throw new InvalidMessageError('extension message without announcing the extension')
          this.description = DescribeSchema.parse(readFramed(decoder, false).body)
          break
        case MessageType.request: {
          if (!this.extended) throw new InvalidMessageError('extension message without announcing the extension')
          const { id, body } = readFramed(decoder, true)
          this.opts.onRequest(this, body).then(
            result => { this.send(encodeFramed(MessageType.response, id, { result: result ?? null })) },
            (err: Error & { code?: string, details?: unknown }) => {
              const error = { code: err.code ?? 'INTERNAL', message: err.message, details: err.details }
              if (err.code === undefined) this.opts.log.error('request failed', { conn: this.id, error: err.message })
              this.send(encodeFramed(MessageType.response, id, { error }))
            }
          )
          break
        }
        default:
          throw new InvalidMessageError(`unknown message type ${type}`)
      }
    } catch (err) {
      this.reject(CloseCodes.badMessage, (err as Error).message)
    }
  }

  private handleSync (decoder: decoding.Decoder, workflow: Workflow): void {
    const syncType = decoding.readVarUint(decoder)
    switch (syncType) {
      case syncProtocol.messageYjsSyncStep1: {
        const stateVector = decoding.readVarUint8Array(decoder)
        Y.decodeStateVector(stateVector) // validates now, so a bad one fails this connection only
        // Reply once what we hold is durable: a peer never receives an edit the store could lose.
        void workflow.whenFlushed().then(() => {
          if (this.closed) return
          const enc = encoding.createEncoder()
          encoding.writeVarUint(enc, MessageType.sync)
          syncProtocol.writeSyncStep2(enc, workflow.doc, stateVector)
          this.send(encoding.toUint8Array(enc))
        }).catch((err: Error) => { this.reject(CloseCodes.storageFailure, `sync reply failed: ${err.message}`) })
        break
      }
      case syncProtocol.messageYjsSyncStep2:
      case syncProtocol.messageYjsUpdate:
        // Not y-protocols' readSyncStep2: it swallows errors, and a bad update must close the socket.
        this.applyUpdate(workflow, decoding.readVarUint8Array(decoder))
        break
      default:
        throw new InvalidMessageError(`unknown sync message type ${syncType}`)
    }
  }

  private applyUpdate (workflow: Workflow, update: Uint8Array): void {
    if (!this.canWrite) {
      // A read-only client still answers the server's sync step 1, usually with nothing.
      const { structs, ds } = Y.decodeUpdate(update)
      if (structs.length > 0 || ds.clients.size > 0) this.reject(CloseCodes.forbidden, 'read-only token: updates are refused')
      return
    }
    workflow.applyPeerUpdate(this, update, this.takeAnnounced())
  }

  private readonly onSocketClose = (): void => {
    if (this.closed) return
    this.closed = true
    if (this.pingTimer !== null) clearInterval(this.pingTimer)
    this.pingTimer = null
    this.buffered = null
    for (const unsubscribe of this.subscriptions.values()) unsubscribe()
    this.subscriptions.clear()
    this.workflow?.removePeer(this)
    this.opts.onClose(this)
  }
}
