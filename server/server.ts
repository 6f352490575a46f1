/**
 * createServer: an HTTP server whose WebSocket upgrades at /<workflowId> speak the standard
 * y-websocket protocol (plus Accord's extension for clients that announce it), and the server
 * module API (history, snapshots, restore, forks, conflicts, subscriptions).
 * Lifecycle: createServer() -> listen() -> close(); listen() makes every part once (`Running`),
 * close() flushes every workflow and releases sockets, timers and the store, so many servers can
 * share one process. Where the parts live: HTTP routes in server/http/routes.ts, WebSocket
 * admission in server/sync/admission.ts, after-commit work in server/hooks/.
 */
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import type { AddressInfo, Socket } from 'node:net'
import { AccordError, ClosedError } from '../src/model/errors.ts'
import type { ViolationRecord } from '../src/model/schema.ts'
import { DEFAULT_TIMEOUTS } from '../src/model/runtime.ts'
import type { ZodType } from 'zod'
import { createChangeFeed, type ChangeFeed, type RecordListener, type SubscribeOptions } from './sync/feed.ts'
import * as history from './history/history.ts'
import { loggerOf } from './ops/log.ts'
import { createRegistry, type Registry } from './sync/registry.ts'
import type { RetentionPolicy } from '../src/store/retention.ts'
import { sweepWorkflows } from './history/sweep.ts'
import { handleRequest } from './sync/rpc.ts'
import { createAdmission, type Admission } from './sync/admission.ts'
import { createListWatch } from './sync/list-watch.ts'
import type { HttpContext } from './http/router.ts'
import { createRequestListener } from './http/routes.ts'
import { defaultUiDir } from './http/ui.ts'
import { createMetrics, type Metrics } from './ops/metrics.ts'
import { authenticator, createVerifier } from './http/auth.ts'
import { createOriginGuard } from './http/origin.ts'
import { createRuntimeMonitor, type RuntimeMonitor } from './runtime/runtime.ts'
import { openLevelStore } from '../src/store/level.ts'
import { createCluster, type Cluster } from './cluster/cluster.ts'
import type { Store, WorkflowMeta } from '../src/store/store.ts'
import { createMcpEndpoint, type McpEndpoint } from './http/mcp-endpoint.ts'
import { archivingHook } from './hooks/archiving.ts'
import { deadlinesHook } from './hooks/deadlines.ts'
import { feedHook } from './hooks/feed.ts'
import { metricsHook } from './hooks/metrics.ts'
import { resolverHook } from './hooks/resolver.ts'
import type { ServerOptions } from './options.ts'

export interface AccordServer {
  /** Opens the store and starts listening; resolves with the bound address. */
  listen: () => Promise<{ host: string, port: number, url: string }>
  close: () => Promise<void>
  /** Ids of workflows currently held in memory. */
  loadedWorkflows: () => string[]
  /** Number of open WebSocket connections. */
  connectionCount: () => number
  /**
   * Serves a connection accepted elsewhere (`accord serve --workers`: the primary read the
   * request's head to find the workflow's worker, then handed the socket over): `head` is every
   * byte read from it so far, parsed here as if it had just arrived.
   */
  adopt: (socket: Socket, head: Uint8Array) => void
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

const LOOPBACK = ['127.0.0.1', 'localhost', '::1']

/** Everything a listening server holds: made once by start(), never changed; close() releases it. */
interface Running {
  readonly store: Store
  readonly registry: Registry
  readonly feed: ChangeFeed
  readonly monitor: RuntimeMonitor
  readonly metrics: Metrics
  /** Null without the `cluster` option. */
  readonly cluster: Cluster | null
  /** What every HTTP route reaches; also the history context of the module API. */
  readonly http: HttpContext
  readonly server: http.Server
  readonly admission: Admission
  /** Null without the `mcp` option. */
  readonly mcp: McpEndpoint | null
  readonly sweepTimer: ReturnType<typeof setInterval>
  readonly address: { host: string, port: number, url: string }
}

export const createServer = (options: ServerOptions = {}): AccordServer => {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 1234
  const maxMessageSize = options.maxMessageSize ?? 16 * 1024 * 1024
  const log = loggerOf(options.log)
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

  let state: 'new' | 'listening' | 'closing' | 'closed' = 'new'
  /** Set when start() has made everything. */
  let running: Running | null = null
  /** What start() has made so far: what close() releases when start() failed midway. */
  const made: { -readonly [K in keyof Running]?: Running[K] } = {}
  let starting: Promise<unknown> = Promise.resolve()
  let closing: Promise<void> | null = null
  /** Open SSE responses, ended on close. */
  const streams = new Set<http.ServerResponse>()
  /** Workflows refused because their stored data is damaged (cleared when one loads again). */
  const corrupt = new Map<string, { workflowId: string, error: string, at: number }>()
  /** Background tasks (retention, resolutions) that close() waits for. */
  const background = new Set<Promise<unknown>>()
  // In cluster mode an open list feed needs every workflow's versions from the bus.
  const listWatch = createListWatch({ onActive: () => made.cluster?.watchAll() ?? (() => {}) })

  const track = (task: Promise<unknown>, what: string): void => {
    const p = task.catch(err => { log.error(`${what} failed`, { error: (err as Error).message }) })
    background.add(p)
    void p.finally(() => background.delete(p))
  }

  const ctx = (): HttpContext => {
    if (running === null) throw new ClosedError('server (call listen() first)')
    return running.http
  }

  const sweep = async (): Promise<void> => { await sweepWorkflows(ctx(), { retention, deleteIdleAfterDays: options.deleteIdleAfterDays, log }) }

  const listen = async (): Promise<{ host: string, port: number, url: string }> => {
    if (state !== 'new') throw new ClosedError('server (listen() may be called once)')
    state = 'listening'
    const started = start()
    starting = started.catch(() => {})
    try {
      running = await started
      return running.address
    } catch (err) {
      await close().catch(() => {})
      throw err
    }
  }

  const start = async (): Promise<Running> => {
    const verifier = options.auth === undefined ? null : await createVerifier(options.auth)
    if (verifier === null && !LOOPBACK.includes(host)) {
      throw new AccordError('INVALID_REQUEST', `refusing to listen on ${host} without auth: configure auth (a secret or public key) or bind to 127.0.0.1`)
    }
    const authenticate = authenticator(verifier)
    // Without auth, every local client is trusted: keep web pages (DNS rebinding) out.
    const guard = verifier === null ? createOriginGuard({ allowedOrigins: options.allowedOrigins }) : () => null
    const store = options.store ?? await openLevelStore(path.resolve(options.dataDir ?? './data'), { sync: options.syncWrites, encryptionKey: options.encryptionKey })
    made.store = store
    // A change stream on a workflow not loaded here needs its versions from the bus (cluster mode).
    const feed = createChangeFeed(store, { onWatched: id => made.cluster?.watch(id) ?? (() => {}) })
    // The gauges read the registry and the connections when scraped, after both are made.
    const metrics = createMetrics({ connections: () => admission.count(), loaded: () => reg.all(), corrupt: () => corrupt.size, busPartitions: () => made.cluster?.partitionsRead() ?? 0 })
    const cluster = options.cluster === undefined
      ? null
      : createCluster(options.cluster, {
        store,
        log,
        track,
        onUnloadedVersion: record => {
          feed.publish(record)
          listWatch.publish(record)
        },
        watchesUnloaded: id => feed.watching(id) || listWatch.active(),
        onSkippedVersion: () => { metrics.busSkipped() },
        onReceivedVersion: () => { metrics.busReceived() },
        onForwarded: n => { metrics.forwarded(n) },
        onRace: () => { metrics.writerRace() },
        onHandOff: () => { metrics.writerHandOff() }
      })
    made.cluster = cluster
    const reg = createRegistry({
      writer: cluster?.writer,
      store,
      log,
      graceMs: options.evictionGraceMs ?? 5000,
      maxLoaded: options.maxLoadedWorkflows ?? Number.POSITIVE_INFINITY,
      keyframeEvery: options.keyframeEvery ?? 100,
      writeAttempts: options.writeAttempts ?? 4,
      quotaBytes: options.quotaBytes ?? Number.POSITIVE_INFINITY,
      hooks: [
        feedHook(feed, listWatch),
        metricsHook(metrics),
        ...(cluster === null ? [] : [cluster.hook]),
        resolverHook({ resolveConflict: options.resolveConflict, store, log, track }),
        archivingHook({ store, retention, pausing: () => state === 'listening', track }),
        deadlinesHook((id, deadline) => { monitor.note(id, deadline) })
      ],
      onLoad: (id, seconds, error) => {
        if (error === undefined) {
          metrics.loaded(seconds)
          corrupt.delete(id)
        } else if ((error as AccordError).code === 'CORRUPT_DATA') {
          metrics.corrupt(id)
          corrupt.set(id, { workflowId: id, error: error.message, at: Date.now() })
        }
      },
      timeouts,
      schemaFor
    })
    made.registry = reg
    await cluster?.start(reg)
    const monitor = createRuntimeMonitor({ registry: reg, store, log, timeouts, checkIntervalMs: options.lifecycle?.checkIntervalMs ?? 1000 })
    made.monitor = monitor
    await monitor.start()
    const mcp = options.mcp === undefined ? null : await createMcpEndpoint({ url: () => running?.address.url ?? '', authenticate, log, maxBodySize: maxMessageSize, options: options.mcp })
    made.mcp = mcp
    const httpCtx: HttpContext = {
      store,
      registry: reg,
      feed,
      snapshots,
      onSnapshot: () => { metrics.snapshot() },
      log,
      maxBodySize: maxMessageSize,
      authenticate,
      schemaFor,
      withWorkflow: reg.with,
      keepAliveMs: 15_000,
      streams,
      metrics,
      readiness: () => ({ state, corruptWorkflows: Array.from(corrupt.values()), serverId: cluster?.serverId }),
      watch: listWatch,
      uiDir: options.ui === false ? null : typeof options.ui === 'object' ? options.ui.dir : defaultUiDir(),
      mcp
    }
    const admission = createAdmission({
      registry: reg,
      log,
      authenticate,
      guard,
      isOpen: () => state === 'listening',
      maxMessageSize,
      maxConnectionsPerWorkflow: options.maxConnectionsPerWorkflow ?? Number.POSITIVE_INFINITY,
      rate: options.rateLimit === undefined ? undefined : { perSecond: options.rateLimit.perSecond, burst: options.rateLimit.burst ?? options.rateLimit.perSecond },
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      onRequest: (c, body) => handleRequest(httpCtx, c, body)
    })
    made.admission = admission
    const onRequest = createRequestListener(httpCtx, guard)
    const server: http.Server = options.tls === undefined ? http.createServer(onRequest) : https.createServer({ cert: options.tls.cert, key: options.tls.key }, onRequest)
    made.server = server
    server.on('upgrade', admission.upgrade)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      const ready = (): void => {
        server.off('error', reject)
        resolve()
      }
      if (options.socketPath === undefined) server.listen(port, host, ready)
      else server.listen(options.socketPath, ready)
    })
    const sweepTimer = setInterval(() => { track(sweep(), 'maintenance sweep') }, options.sweepIntervalMs ?? 60 * 60 * 1000)
    sweepTimer.unref()
    made.sweepTimer = sweepTimer
    const scheme = options.tls === undefined ? 'ws' : 'wss'
    const addr: AddressInfo = options.socketPath === undefined ? server.address() as AddressInfo : { address: options.socketPath, family: 'unix', port: 0 }
    const url = options.socketPath === undefined
      ? `${scheme}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
      : `${scheme}+unix://${options.socketPath}`
    log.info('accord listening', { url, dataDir: ownsStore ? path.resolve(options.dataDir ?? './data') : undefined, auth: verifier !== null })
    if (verifier === null) log.warn('no auth configured: listening on loopback only, and every local client may read and write every workflow')
    return { store, registry: reg, feed, monitor, metrics, cluster, http: httpCtx, server, admission, mcp, sweepTimer, address: { host: addr.address, port: addr.port, url } }
  }

  /** Releases what start() made, in order: intake first, then the workflows' flush, then the store. */
  const release = async (r: Partial<Running>): Promise<void> => {
    await r.mcp?.close()
    for (const stream of Array.from(streams)) stream.end()
    if (r.sweepTimer !== undefined) clearInterval(r.sweepTimer)
    // No more reconciling; the bus stays open for the registry's last flushes (they may forward).
    r.cluster?.stop()
    r.admission?.close()
    const server = r.server
    if (server !== undefined) {
      server.closeAllConnections()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
    await r.monitor?.close()
    await Promise.all(Array.from(background))
    const flushed = r.registry?.loaded().length ?? 0
    await r.registry?.close()
    await Promise.all(Array.from(background))
    await r.cluster?.close()
    if (ownsStore) await r.store?.close()
    if (server !== undefined) log.info('accord closed', { workflowsFlushed: flushed })
  }

  /** Idempotent: every call gets the same promise. A close() during listen() waits for start() first. */
  const close = (): Promise<void> => {
    closing ??= (async () => {
      state = 'closing'
      await starting
      await release(running ?? made)
      state = 'closed'
    })()
    return closing
  }

  return {
    listen,
    close,
    loadedWorkflows: () => running?.registry.loaded() ?? [],
    connectionCount: () => running?.admission.count() ?? 0,
    adopt: (socket, head) => {
      if (running === null || state !== 'listening') {
        socket.destroy()
        return
      }
      // The HTTP server parses what the socket says from here on; the bytes already read go first.
      running.server.emit('connection', socket)
      if (head.length > 0) socket.emit('data', Buffer.from(head))
      socket.resume()
    },
    get store () {
      const store = running?.store ?? options.store
      if (store === undefined) throw new ClosedError('server store (call listen() first)')
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
      running?.registry.get(id)?.resetValidationBaseline()
    },
    violations: id => history.violations(ctx(), id),
    checkDeadlines: async () => { await running?.monitor.check() }
  }
}
