/**
 * createServer: an HTTP server whose WebSocket upgrades at /<workflowId> speak the standard
 * y-websocket protocol (plus Accord's extension for clients that announce it), and the server
 * module API (history, snapshots, restore, forks, conflicts, subscriptions).
 * Lifecycle: createServer() -> listen() -> close(); close() flushes every workflow and releases
 * sockets, timers and the store, so many servers can share one process.
 */
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { CloseCodes } from '../src/model/close-codes.ts'
import { AccordError, ClosedError } from '../src/model/errors.ts'
import type { JsonValue } from '../src/model/json.ts'
import { applyPatchToYjs } from '../src/model/patch.ts'
import { stateRoot } from '../src/model/json-yjs.ts'
import { AGENT_PARAM, EXTENSION_PARAM } from '../src/model/protocol.ts'
import type { ConflictRecord, ViolationRecord } from '../src/model/schema.ts'
import { DEFAULT_TIMEOUTS, type AgentStatus } from '../src/model/runtime.ts'
import type { ZodType } from 'zod'
import { isValidWorkflowId } from '../src/model/workflow-id.ts'
import { Connection } from './sync/connection.ts'
import { createChangeFeed, type ChangeFeed, type RecordListener, type SubscribeOptions } from './sync/feed.ts'
import * as history from './history/history.ts'
import { createLogger, type Logger, type LoggerOptions } from './ops/log.ts'
import { createRegistry, type Registry } from './sync/registry.ts'
import { archiveOldVersions, type RetentionPolicy } from '../src/store/retention.ts'
import { handleRequest } from './sync/rpc.ts'
import { handleApi } from './http/api.ts'
import { sendError } from './http/router.ts'
import { createListWatch, defaultUiDir, handleUi, type UiContext } from './http/ui.ts'
import { createMetrics, type Metrics } from './ops/metrics.ts'
import { ANONYMOUS, ForbiddenError, createVerifier, redactToken, type AuthOptions, type Principal, type Verifier } from './http/auth.ts'
import { createOriginGuard } from './http/origin.ts'
import { createRuntimeMonitor, type RuntimeMonitor } from './runtime/runtime.ts'
import { openLevelStore } from '../src/store/level.ts'
import { streamBackup } from './ops/backup.ts'
import type { Bus, Forward } from './cluster/bus.ts'
import { createRedisBus } from './cluster/bus-redis.ts'
import type { Store, WorkflowMeta } from '../src/store/store.ts'
import type { Workflow } from './sync/workflow.ts'
import type { CommitHook, CommittedWorkflow } from './sync/commit-hooks.ts'
import { createMcpEndpoint, MCP_PATH, type McpEndpoint, type McpEndpointOptions } from './http/mcp-endpoint.ts'

/** Return a value to override the CRDT's pick (recorded as a resolution), or undefined to keep it. */
export type ConflictResolver = (conflict: ConflictRecord) => { value: JsonValue } | undefined | Promise<{ value: JsonValue } | undefined>

export interface ServerOptions {
  /** Default 1234; 0 picks a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** LevelDB directory, default ./data. Ignored when `store` is given. */
  dataDir?: string
  /** A store to use instead of opening LevelDB at dataDir; the caller keeps ownership. */
  store?: Store
  /** AES-256-GCM key (32 bytes) encrypting every LevelDB value at rest (see server/store/frame.ts). */
  encryptionKey?: Uint8Array
  /** fsync each LevelDB write batch, so acknowledged edits also survive power loss (default false). */
  syncWrites?: boolean
  /** Largest accepted message in bytes (default 16 MiB); larger closes with 4413. */
  maxMessageSize?: number
  /** Workflows held in memory at once (default unlimited): idle ones are evicted least recently used first; when every one is in use, new ones are refused (4503 / HTTP 429). */
  maxLoadedWorkflows?: number
  /** WebSocket connections per workflow (default unlimited); more close with 4503. */
  maxConnectionsPerWorkflow?: number
  /** Updates (and presence messages) per second per connection, with a burst (default unlimited); over it closes with 4429. */
  rateLimit?: { perSecond: number, burst?: number }
  /**
   * Cluster mode: several servers on one shared store (PostgreSQL) exchange versions, presence and
   * locks over Redis. `reconcileMs` (default 1000) bounds how long a missed bus message can delay a
   * server: each loaded workflow is compared with the store's head that often.
   */
  cluster?: {
    redisUrl: string
    prefix?: string
    reconcileMs?: number
    /** How long after a writer died another server takes its workflows over (default 5000 ms). */
    writerLeaseMs?: number
    /** How long a forwarded update waits for the writer's acknowledgement before it goes again (default 2000 ms). */
    forwardTimeoutMs?: number
  }
  /** How long a workflow stays in memory after its last connection left (default 5000 ms). */
  evictionGraceMs?: number
  /** A full-state keyframe every this many versions (default 100): bounds cold-load replay. */
  keyframeEvery?: number
  /** Write attempts before a workflow is stopped (default 4). */
  writeAttempts?: number
  /** Interval of WebSocket pings that detect dead peers (default 30000 ms). */
  pingIntervalMs?: number
  /** Version retention: `maxVersions` hot (100), older than `archiveAfterDays` (30) archived. */
  retention?: Partial<RetentionPolicy>
  /** Snapshot retention: newest `keepRoutine` (3) routine snapshots, recovery ones `recoveryDays` (7). */
  snapshots?: Partial<history.SnapshotPolicy>
  /** Bytes of stored data per workflow above which its writes are refused (default: no quota). */
  quotaBytes?: number
  /** Delete workflows without edits for this many days (default: never). */
  deleteIdleAfterDays?: number
  /** How often the maintenance sweep runs (default 1 hour). */
  sweepIntervalMs?: number
  /** Called for every detected conflict. */
  resolveConflict?: ConflictResolver
  /** Agent runtime: per-status timeouts in ms (default idle 300 s, processing 1800 s, error 60 s) and how often deadlines are checked (1000 ms). */
  lifecycle?: { timeouts?: Partial<Record<AgentStatus, number>>, checkIntervalMs?: number }
  /** zod schemas checked after every applied update, by workflow id (see also registerSchema). */
  schemas?: Record<string, ZodType> | ((workflowId: string) => ZodType | undefined)
  /** Require signed tokens (JWT) on every WebSocket and HTTP request. Without it the server only listens on loopback. */
  auth?: AuthOptions
  /**
   * Without auth: browser origins (scheme://host[:port]) allowed besides loopback pages. Requests
   * with a non-loopback Host, or an Origin neither loopback nor listed, are refused (403 / 4403).
   */
  allowedOrigins?: string[]
  /** A logger, or options for the built-in JSON logger. */
  log?: Logger | LoggerOptions
  /** Serve MCP (Model Context Protocol, Streamable HTTP) at /mcp; needs the optional @modelcontextprotocol/sdk. */
  mcp?: McpEndpointOptions
  /** The inspector at /ui (default true; false turns it off), or the directory of its build (default dist/ui). */
  ui?: boolean | { dir: string }
  /** Serve https:// and wss:// with this PEM certificate (chain) and private key. */
  tls?: { cert: string | Buffer, key: string | Buffer }
}

export interface AccordServer {
  /** Opens the store and starts listening; resolves with the bound address. */
  listen: () => Promise<{ host: string, port: number, url: string }>
  close: () => Promise<void>
  /** Ids of workflows currently held in memory. */
  loadedWorkflows: () => string[]
  /** Number of open WebSocket connections. */
  connectionCount: () => number
  /** The store (available after listen()). */
  readonly store: Store
  listWorkflows: () => Promise<WorkflowMeta[]>
  history: (id: string, options?: { limit?: number, before?: number }) => ReturnType<typeof history.history>
  stateAt: (id: string, version: number) => ReturnType<typeof history.stateAt>
  diff: (id: string, from: number, to: number) => ReturnType<typeof history.diff>
  createSnapshot: (id: string, options: history.CreateSnapshotOptions) => ReturnType<typeof history.createSnapshot>
  listSnapshots: (id: string) => ReturnType<typeof history.listSnapshots>
  deleteSnapshot: (id: string, snapshotId: string) => Promise<void>
  restore: (id: string, options: history.RestoreOptions) => ReturnType<typeof history.restore>
  fork: (id: string, options?: { version?: number, by?: string }) => ReturnType<typeof history.fork>
  promote: (forkId: string, options?: { by?: string }) => ReturnType<typeof history.promote>
  discard: (forkId: string) => Promise<void>
  conflicts: (id: string) => ReturnType<typeof history.conflicts>
  deleteWorkflow: (id: string) => Promise<void>
  /** Change records as they are persisted; `after` replays what was missed first. */
  subscribe: (id: string, options: SubscribeOptions, listener: RecordListener) => Promise<() => void>
  /** Runs retention (archive, snapshot pruning, idle deletion) over every workflow now. */
  sweep: () => Promise<void>
  /** Registers (or with undefined removes) the schema of a workflow; applies to loaded ones too. */
  registerSchema: (workflowId: string, schema: ZodType | undefined) => void
  violations: (id: string) => Promise<ViolationRecord[]>
  /** Enforces due lifecycle timeouts and task leases now (the monitor does it every checkIntervalMs). */
  checkDeadlines: () => Promise<void>
}

const isLogger = (value: unknown): value is Logger =>
  typeof value === 'object' && value !== null && typeof (value as Logger).info === 'function'

const DAY = 24 * 60 * 60 * 1000
/** Pause before each archiving pass, so the commits of other workflows run between passes. */
const ARCHIVE_PAUSE_MS = 10

const bearer = (header: string | undefined): string | undefined =>
  header !== undefined && header.startsWith('Bearer ') ? header.slice(7).trim() : undefined

export const createServer = (options: ServerOptions = {}): AccordServer => {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 1234
  const maxMessageSize = options.maxMessageSize ?? 16 * 1024 * 1024
  const log = isLogger(options.log) ? options.log : createLogger(options.log)
  const ownsStore = options.store === undefined
  const retention: RetentionPolicy = { maxVersions: 100, archiveAfterDays: 30, ...options.retention }
  const snapshots: history.SnapshotPolicy = { keepRoutine: 3, recoveryDays: 7, ...options.snapshots }
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.lifecycle?.timeouts }
  const registeredSchemas = new Map<string, ZodType>()
  const schemaFor = (id: string): ZodType | undefined => {
    const registered = registeredSchemas.get(id)
    if (registered !== undefined) return registered
    const s = options.schemas
    return typeof s === 'function' ? s(id) : s?.[id]
  }

  let store: Store | null = options.store ?? null
  let registry: Registry | null = null
  let feed: ChangeFeed | null = null
  let monitor: RuntimeMonitor | null = null
  let verifier: Verifier | null = null
  let metrics: Metrics | null = null
  const streams = new Set<http.ServerResponse>()
  /** Workflows refused because their stored data is damaged (cleared when one loads again). */
  const corrupt = new Map<string, { workflowId: string, error: string, at: number }>()
  const connectionsPer = new Map<string, number>()
  let bus: Bus | null = null
  let reconcileTimer: ReturnType<typeof setInterval> | null = null
  let httpServer: http.Server | null = null
  let uiCtx: UiContext | null = null
  let wss: WebSocketServer | null = null
  let mcp: McpEndpoint | null = null
  let selfUrl = ''
  let sweepTimer: ReturnType<typeof setInterval> | null = null
  let state: 'new' | 'listening' | 'closing' | 'closed' = 'new'
  const connections = new Set<Connection>()
  /** Background tasks (retention, resolutions) that close() waits for. */
  const background = new Set<Promise<unknown>>()
  const archiving = new Set<string>()

  const track = (task: Promise<unknown>, what: string): void => {
    const p = task.catch(err => { log.error(`${what} failed`, { error: (err as Error).message }) })
    background.add(p)
    void p.finally(() => background.delete(p))
  }

  const ctx = (): history.HistoryContext & { feed: ChangeFeed } => {
    if (store === null || registry === null || feed === null) throw new ClosedError('server (call listen() first)')
    return { store, registry, feed, snapshots, onSnapshot: () => { metrics?.snapshot() } }
  }

  const resolve = async (wf: CommittedWorkflow, conflict: ConflictRecord): Promise<void> => {
    const decision = await options.resolveConflict?.(conflict)
    if (decision === undefined || wf.isFailed) return
    const by = 'accord:resolver'
    wf.transact(() => {
      applyPatchToYjs(stateRoot(wf.doc), [{ op: 'add', path: conflict.path, value: decision.value }])
    }, { agentId: by, takeDescription: () => ({ description: `resolved conflict ${conflict.id} at ${conflict.path}` }) })
    await wf.whenFlushed(Number.POSITIVE_INFINITY)
    await ctx().store.putConflict({ ...conflict, resolution: { value: decision.value, version: wf.head, by } })
  }

  const listWatch = createListWatch()
  const feedHook: CommitHook = {
    name: 'change feed',
    afterVersion: ({ record }) => {
      feed?.publish(record)
      listWatch.publish(record)
    }
  }
  const metricsHook: CommitHook = {
    name: 'metrics',
    afterVersion: v => { if (v.local) metrics?.version(v.workflow as Workflow, v.record, { seconds: v.seconds, updates: v.updates.length, bytes: v.bytes }, v.conflicts.length) }
  }
  const busHook: CommitHook = {
    name: 'cluster bus',
    afterVersion: v => { if (v.local && bus !== null) track(bus.publishVersion({ meta: v.workflow.currentMeta, record: v.record, updates: v.updates }), 'publishing a version') }
  }
  const resolverHook: CommitHook = {
    name: 'conflict resolver',
    afterVersion: ({ workflow: wf, conflicts }) => {
      for (const conflict of conflicts) {
        log.info('conflict', { workflowId: wf.id, path: conflict.path, winner: conflict.winner, version: conflict.version })
        if (options.resolveConflict !== undefined) track(resolve(wf, conflict), 'conflict resolution')
      }
    }
  }

  /**
   * Archiving is background work, run one workflow at a time with a pause before each: under
   * even load many workflows reach a keyframe together. Archiving them all at once held the event
   * loop for up to 90 ms; back to back, each commit during the ~100 ms wave waited 4-11 ms on
   * the store (median p99 at 3,000 updates/s: 9.8 ms, with the pause 7.5 ms). A pass archives
   * every interval due, so a queue that falls behind catches up in larger passes.
   */
  let archiveQueue: Promise<unknown> = Promise.resolve()
  const archiveHook: CommitHook = { name: 'archiving', afterKeyframe: wf => { onKeyframe(wf) } }
  const onKeyframe = (wf: CommittedWorkflow): void => {
    const s = store
    if (archiving.has(wf.id) || s === null) return
    archiving.add(wf.id)
    const run = archiveQueue.then(async () => {
      if (state === 'listening') await new Promise(resolve => setTimeout(resolve, ARCHIVE_PAUSE_MS))
      return archiveOldVersions(s, wf.id, retention)
    }).finally(() => archiving.delete(wf.id))
    archiveQueue = run.catch(() => {})
    track(run, 'archiving')
  }

  const sweep = async (): Promise<void> => {
    const { store: s, registry: r } = ctx()
    const now = Date.now()
    for (const meta of await s.listWorkflows()) {
      const idle = options.deleteIdleAfterDays !== undefined && meta.updatedAt < now - options.deleteIdleAfterDays * DAY
      if (idle && r.get(meta.id) === undefined && !r.loaded().includes(meta.id)) {
        log.info('deleting idle workflow', { workflowId: meta.id, updatedAt: meta.updatedAt })
        await s.deleteWorkflow(meta.id)
        continue
      }
      await archiveOldVersions(s, meta.id, retention, now)
      await history.pruneSnapshots(ctx(), meta.id, now)
    }
  }

  const onConnection = (ws: WebSocket, req: http.IncomingMessage, reg: Registry): void => {
    let id = ''
    let params = new URLSearchParams()
    try {
      const url = new URL(req.url ?? '/', 'http://accord')
      id = decodeURIComponent(url.pathname.slice(1))
      params = url.searchParams
    } catch {}
    if (!isValidWorkflowId(id)) {
      log.warn('rejected connection', { reason: 'invalid workflow id', path: redactToken(req.url ?? '').slice(0, 200) })
      ws.close(CloseCodes.invalidWorkflowId.code, CloseCodes.invalidWorkflowId.reason)
      return
    }
    const peers = (connectionsPer.get(id) ?? 0) + 1
    if (peers > (options.maxConnectionsPerWorkflow ?? Number.POSITIVE_INFINITY)) {
      log.warn('rejected connection', { reason: 'too many connections', workflowId: id, limit: options.maxConnectionsPerWorkflow })
      ws.close(CloseCodes.tooManyConnections.code, `${CloseCodes.tooManyConnections.reason} (limit ${options.maxConnectionsPerWorkflow})`)
      return
    }
    connectionsPer.set(id, peers)
    const conn = new Connection(ws, id, {
      maxMessageSize,
      rate: options.rateLimit === undefined ? undefined : { perSecond: options.rateLimit.perSecond, burst: options.rateLimit.burst ?? options.rateLimit.perSecond },
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      log,
      extended: params.get(EXTENSION_PARAM) === '1',
      onClose: c => {
        connections.delete(c)
        const left = (connectionsPer.get(c.workflowId) ?? 1) - 1
        if (left > 0) connectionsPer.set(c.workflowId, left)
        else connectionsPer.delete(c.workflowId)
        if (c.workflow !== null) reg.release(c.workflow)
      },
      onRequest: (c, body) => handleRequest(ctx(), c, body)
    })
    connections.add(conn)
    // Input is buffered by the connection until it is attached, so nothing is lost while the
    // token is checked and the workflow loads.
    void authenticate(params.get('token') ?? bearer(req.headers.authorization), params.get(AGENT_PARAM)).then(
      principal => {
        if (conn.isClosed) return
        if (!principal.can(id, 'read')) {
          log.warn('rejected connection', { reason: 'forbidden', workflowId: id, agent: principal.agentId })
          conn.close(CloseCodes.forbidden, `no read access to ${id}`)
          return
        }
        conn.authorize(principal)
        reg.acquire(id).then(
          workflow => {
            if (conn.isClosed) reg.release(workflow)
            else conn.attach(workflow)
          },
          (err: Error & { code?: string }) => { conn.close(err.code === 'LIMIT_EXCEEDED' ? CloseCodes.tooManyWorkflows : CloseCodes.loadFailure, err.message) }
        )
      },
      (err: Error) => {
        log.warn('rejected connection', { reason: err.message, workflowId: id })
        conn.close(CloseCodes.unauthorized, err.message)
      }
    )
  }

  /** The principal of a request: from its token when auth is on, else anyone (named by ?agent=). */
  const authenticate = async (token: string | null | undefined, claimedAgent: string | null): Promise<Principal> => {
    if (verifier !== null) return verifier.verify(token)
    return ANONYMOUS((claimedAgent ?? '').slice(0, 200) || 'anonymous')
  }

  const listen = async (): Promise<{ host: string, port: number, url: string }> => {
    if (state !== 'new') throw new ClosedError('server (listen() may be called once)')
    state = 'listening'
    try {
      return await start()
    } catch (err) {
      state = 'new'
      await close().catch(() => {})
      throw err
    }
  }

  const start = async (): Promise<{ host: string, port: number, url: string }> => {
    if (options.auth !== undefined) verifier = await createVerifier(options.auth)
    else if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
      throw new AccordError('INVALID_REQUEST', `refusing to listen on ${host} without auth: configure auth (a secret or public key) or bind to 127.0.0.1`)
    }
    if (store === null) store = await openLevelStore(path.resolve(options.dataDir ?? './data'), { sync: options.syncWrites, encryptionKey: options.encryptionKey })
    feed = createChangeFeed(store)
    if (options.cluster !== undefined) bus = createRedisBus({ url: options.cluster.redisUrl, prefix: options.cluster.prefix, writerLeaseMs: options.cluster.writerLeaseMs, log })
    const clusterBus = bus
    const reg = createRegistry({
      cluster: clusterBus === null
        ? undefined
        : {
            serverId: clusterBus.serverId,
            lock: clusterBus.lock,
            publishAwareness: (wf, update) => { clusterBus.publishAwareness(wf.id, update) },
            claimWriter: clusterBus.claimWriter,
            releaseWriter: clusterBus.releaseWriter,
            forward: (to, f) => {
              metrics?.forwarded(f.updates.length)
              clusterBus.forward(to, f)
            },
            forwardTimeoutMs: options.cluster?.forwardTimeoutMs ?? 2000,
            onRace: () => { metrics?.writerRace() }
          },
      store,
      log,
      graceMs: options.evictionGraceMs ?? 5000,
      maxLoaded: options.maxLoadedWorkflows ?? Number.POSITIVE_INFINITY,
      keyframeEvery: options.keyframeEvery ?? 100,
      writeAttempts: options.writeAttempts ?? 4,
      quotaBytes: options.quotaBytes ?? Number.POSITIVE_INFINITY,
      hooks: [feedHook, metricsHook, busHook, resolverHook, archiveHook, { name: 'deadlines', deadlineChanged: (wf, deadline) => { monitor?.note(wf.id, deadline) } }],
      onLoad: (id, seconds, error) => {
        if (error === undefined) {
          metrics?.loaded(seconds)
          corrupt.delete(id)
        } else if ((error as AccordError).code === 'CORRUPT_DATA') {
          metrics?.corrupt(id)
          corrupt.set(id, { workflowId: id, error: error.message, at: Date.now() })
        }
      },
      timeouts,
      schemaFor
    })
    registry = reg
    if (clusterBus !== null) {
      const reconcile = (): void => {
        for (const wf of reg.all()) {
          track(wf.catchUp(), 'catching up with the store')
          track(wf.retryForwards(), 'retrying forwards')
        }
      }
      // Updates forwarded here are stored even if the lease moved meanwhile (the store keeps a
      // second writer safe); the workflow is loaded for it when it is not.
      const storeForwarded = (f: Forward): Promise<void> => reg.with(f.workflowId, async wf => {
        const version = await wf.applyForwarded(f)
        clusterBus.acknowledge(f.from, { workflowId: f.workflowId, seq: f.seq, version })
      })
      await clusterBus.start({
        onVersion: v => {
          const wf = reg.get(v.record.workflowId)
          if (wf !== undefined) track(wf.applyRemote(v), 'applying a remote version')
          else {
            feed?.publish(v.record)
            listWatch.publish(v.record)
          }
        },
        onAwareness: (id, update) => { reg.get(id)?.applyRemoteAwareness(update) },
        onReconnect: reconcile,
        onForward: f => { track(storeForwarded(f), 'storing forwarded updates') },
        onAck: ack => { reg.get(ack.workflowId)?.acknowledged(ack.seq, ack.version) },
        onWriterLost: id => { reg.get(id)?.writerLost() }
      })
      reconcileTimer = setInterval(reconcile, options.cluster?.reconcileMs ?? 1000)
      reconcileTimer.unref()
    }
    monitor = createRuntimeMonitor({ registry: reg, store, log, timeouts, checkIntervalMs: options.lifecycle?.checkIntervalMs ?? 1000 })
    await monitor.start()
    metrics = createMetrics({ connections: () => connections.size, loaded: () => reg.all(), corrupt: () => corrupt.size })
    const httpCtx = {
      ...ctx(),
      log,
      maxBodySize: maxMessageSize,
      authenticate,
      schemaFor,
      withWorkflow: <T>(id: string, fn: (wf: Workflow) => Promise<T>): Promise<T> => reg.with(id, fn),
      keepAliveMs: 15_000,
      streams
    }
    if (options.mcp !== undefined) mcp = await createMcpEndpoint({ url: () => selfUrl, authenticate, log, maxBodySize: maxMessageSize, options: options.mcp })

    // Without auth, every local client is trusted: keep web pages (DNS rebinding) out.
    const guard = verifier === null ? createOriginGuard({ allowedOrigins: options.allowedOrigins }) : () => null
    uiCtx = { dir: options.ui === false ? null : typeof options.ui === 'object' ? options.ui.dir : defaultUiDir(), watch: listWatch, authenticate, keepAliveMs: 15_000, streams }
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const refusal = guard(req)
      if (refusal !== null) {
        log.warn('refused request', { reason: refusal, method: req.method })
        sendError(res, new ForbiddenError(refusal))
        return
      }
      void handleHttp(req, res, httpCtx)
    }
    const server: http.Server = options.tls === undefined ? http.createServer(onRequest) : https.createServer({ cert: options.tls.cert, key: options.tls.key }, onRequest)
    // ws enforces a hard ceiling while reading (1009); our own check gives 4413 below it.
    const sockets = new WebSocketServer({ noServer: true, maxPayload: maxMessageSize * 2 })
    server.on('upgrade', (req, socket, head) => {
      if (state !== 'listening') {
        socket.destroy()
        return
      }
      const refusal = guard(req)
      sockets.handleUpgrade(req, socket, head, ws => {
        if (refusal === null) {
          onConnection(ws, req, reg)
          return
        }
        // Upgraded only to say why: a 4403 is final for clients, a failed upgrade is retried.
        log.warn('rejected connection', { reason: refusal })
        ws.close(CloseCodes.forbidden.code, Buffer.from(refusal).subarray(0, 123).toString('utf8').replace(/\uFFFD$/, ''))
      })
    })
    httpServer = server
    wss = sockets
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    sweepTimer = setInterval(() => { track(sweep(), 'maintenance sweep') }, options.sweepIntervalMs ?? 60 * 60 * 1000)
    sweepTimer.unref()
    const addr = server.address() as AddressInfo
    const url = `${options.tls === undefined ? 'ws' : 'wss'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
    selfUrl = url
    log.info('accord listening', { url, dataDir: ownsStore ? path.resolve(options.dataDir ?? './data') : undefined, auth: verifier !== null })
    if (verifier === null) log.warn('no auth configured: listening on loopback only, and every local client may read and write every workflow')
    return { host: addr.address, port: addr.port, url }
  }

  const handleHttp = async (req: http.IncomingMessage, res: http.ServerResponse, httpCtx: Parameters<typeof handleApi>[0]): Promise<void> => {
    const pathname = (req.url ?? '/').split('?')[0]
    try {
      if (pathname === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }))
      } else if (pathname === '/readyz') {
        // Corrupt workflows do not make the server unready: every other workflow still serves.
        const ready = state === 'listening'
        const corruptWorkflows = Array.from(corrupt.values())
        res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ ready, state, degraded: corruptWorkflows.length > 0, corruptWorkflows, ...(bus === null ? {} : { serverId: bus.serverId }) }))
      } else if (pathname === '/v1/admin/backup' && req.method === 'GET') {
        const who = await httpCtx.authenticate(bearer(req.headers.authorization), null)
        if (!who.can('*', 'admin')) throw new AccordError('FORBIDDEN', 'backups need the admin right on every workflow (scope admin:*)')
        try {
          await streamBackup(ctx().store, res)
        } catch (err) {
          // Past the headers an error can only cut the stream; the missing trailer tells the client.
          if (!res.headersSent) throw err
          log.error('backup stream failed', { error: (err as Error).message })
          res.destroy()
        }
      } else if (pathname === '/metrics') {
        if (verifier !== null) await httpCtx.authenticate(bearer(req.headers.authorization), null)
        const registry = (metrics as Metrics).registry
        res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics())
      } else if (mcp !== null && pathname === MCP_PATH) {
        await mcp.handle(req, res)
      } else if (uiCtx !== null && await handleUi(uiCtx, req, res)) {
        // the inspector and its list feed (server/http/ui.ts)
      } else if (!await handleApi(httpCtx, req, res)) {
        sendError(res, new AccordError('NOT_FOUND', `no route ${pathname}`))
      }
    } catch (err) {
      sendError(res, err, log)
    }
  }

  const close = async (): Promise<void> => {
    if (state === 'closed' || state === 'closing') return
    state = 'closing'
    await mcp?.close()
    for (const stream of Array.from(streams)) stream.end()
    if (sweepTimer !== null) clearInterval(sweepTimer)
    if (reconcileTimer !== null) clearInterval(reconcileTimer)
    for (const conn of Array.from(connections)) conn.close(CloseCodes.shuttingDown)
    wss?.close()
    if (httpServer !== null) {
      const server = httpServer
      server.closeAllConnections()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
    await monitor?.close()
    await Promise.all(Array.from(background))
    const flushed = registry?.loaded().length ?? 0
    await registry?.close()
    await Promise.all(Array.from(background))
    await bus?.close()
    if (ownsStore) await store?.close()
    state = 'closed'
    if (httpServer !== null) log.info('accord closed', { workflowsFlushed: flushed })
  }

  return {
    listen,
    close,
    loadedWorkflows: () => registry?.loaded() ?? [],
    connectionCount: () => connections.size,
    get store () {
      if (store === null) throw new ClosedError('server store (call listen() first)')
      return store
    },
    listWorkflows: () => ctx().store.listWorkflows(),
    history: (id, o) => history.history(ctx(), id, o),
    stateAt: (id, v) => history.stateAt(ctx(), id, v),
    diff: (id, a, b) => history.diff(ctx(), id, a, b),
    createSnapshot: (id, o) => history.createSnapshot(ctx(), id, o),
    listSnapshots: id => history.listSnapshots(ctx(), id),
    deleteSnapshot: (id, s) => history.deleteSnapshot(ctx(), id, s),
    restore: (id, o) => history.restore(ctx(), id, o),
    fork: (id, o) => history.fork(ctx(), id, o),
    promote: (id, o) => history.promote(ctx(), id, o),
    discard: id => history.discard(ctx(), id),
    conflicts: id => history.conflicts(ctx(), id),
    deleteWorkflow: id => history.deleteWorkflow(ctx(), id),
    subscribe: (id, o, l) => ctx().feed.subscribe(id, o, l),
    sweep,
    registerSchema: (id, schema) => {
      if (schema === undefined) registeredSchemas.delete(id)
      else registeredSchemas.set(id, schema)
      registry?.get(id)?.resetValidationBaseline()
    },
    violations: id => history.violations(ctx(), id),
    checkDeadlines: async () => { await monitor?.check() }
  }
}
