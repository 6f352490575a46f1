/**
 * `accord serve`: settings (serve-settings.ts) -> createServer options -> listen, one ready line
 * on stdout, and one line once a signal shut it down cleanly:
 *
 *   accord serving on ws://127.0.0.1:1234 (store leveldb:/srv/data, bus none, auth off, tls off)
 *   accord stopped cleanly: 3 workflows flushed, store closed
 */
import path from 'node:path'
import { readFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'
import { createServer } from '../server.ts'
import type { ServerOptions } from '../options.ts'
import type { LogLevel } from './log.ts'
import { LOG_LEVELS } from './log.ts'
import { createMemoryStore } from '../../src/store/memory.ts'
import type { Store } from '../../src/store/store.ts'
import type { AuthOptions } from '../http/auth.ts'
import { UsageError } from './cli-errors.ts'
import { describePostgresError, describeRedisError, redact } from './service-errors.ts'
import { resolveSettings, type Settings } from './serve-settings.ts'
import { parseEncryptionKey } from '../../src/store/frame.ts'
import os from 'node:os'
import { loggerOf } from './log.ts'
import { prepareLayout, readLayout } from '../workers/layout.ts'
import { WORKER_ENV, WorkerIdentitySchema, type WorkerIdentity } from '../workers/messages.ts'
import { createWorkerPool } from '../workers/pool.ts'
import { createFront } from '../workers/front.ts'
import { runWorker } from '../workers/worker.ts'

export const isPostgresUrl = (url: unknown): url is string => typeof url === 'string' && /^postgres(ql)?:\/\//.test(url)

/** Loaded on demand: LevelDB users never load the PostgreSQL driver. */
export const openPostgres = async (url: string): Promise<Store> => {
  try {
    return await (await import('../store/postgres.ts')).openPostgresStore(url)
  } catch (err) {
    throw describePostgresError(url, err)
  }
}

/** The at-rest key from a key file, else the environment (64 hex digits or base64). */
export const encryptionKey = async (file: unknown, env = 'ACCORD_ENCRYPTION_KEY'): Promise<Uint8Array | undefined> => {
  const text = typeof file === 'string' ? await readText(file, 'encryption key file') : process.env[env]
  return text === undefined || text.trim() === '' ? undefined : parseEncryptionKey(text)
}

const readText = async (file: string, what: string): Promise<string> => {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** `--schemas ./schemas.js`: a default (or `schemas`) export, a map id -> zod schema or a function. */
const loadSchemas = async (file: string): Promise<ServerOptions['schemas']> => {
  let mod: Record<string, unknown>
  try {
    mod = await import(pathToFileURL(path.resolve(file)).href) as Record<string, unknown>
  } catch (err) {
    throw new UsageError(`cannot load the schemas module ${file}: ${(err as Error).message}`)
  }
  const value = mod.default ?? mod.schemas
  const isSchema = (v: unknown): boolean => typeof (v as { safeParse?: unknown } | null)?.safeParse === 'function'
  if (typeof value === 'function') return value as (id: string) => undefined
  if (typeof value === 'object' && value !== null && Object.values(value).every(isSchema)) return value as Record<string, never>
  throw new UsageError(`the schemas module ${file} must export (default or "schemas") an object of zod schemas by workflow id, or a function id => schema`)
}

const int = (v: unknown): number | undefined => typeof v === 'number' ? v : undefined
const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined

/** Checks the combination of settings and turns them into createServer options (store excluded). */
export const serverOptionsOf = async (v: Settings): Promise<ServerOptions> => {
  const store = str(v.store)
  if (store !== undefined && store !== 'memory' && !isPostgresUrl(store)) throw new UsageError('--store must be a postgres:// URL')
  const bus = str(v.bus)
  if (bus !== undefined && !/^rediss?:\/\//.test(bus)) throw new UsageError('--bus must be a redis:// URL')
  if (bus !== undefined && !isPostgresUrl(store)) throw new UsageError('--bus needs a shared store: --store postgres://...')
  const level = v['log-level'] as LogLevel
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${String(level)}`)
  if ((v['tls-cert'] === undefined) !== (v['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
  if (v['rate-limit-burst'] !== undefined && v['rate-limit'] === undefined) throw new UsageError('--rate-limit-burst needs --rate-limit')
  const secret = str(v['auth-secret'])
  const publicKeyFile = str(v['auth-public-key-file'])
  if (secret !== undefined && publicKeyFile !== undefined) throw new UsageError('use --auth-secret or --auth-public-key-file, not both')
  const auth: AuthOptions | undefined = secret === undefined && publicKeyFile === undefined
    ? undefined
    : {
        secret,
        publicKey: publicKeyFile === undefined ? undefined : await readText(publicKeyFile, 'public key file'),
        issuer: str(v['auth-issuer']),
        audience: str(v['auth-audience'])
      }
  const timeouts = { idle: int(v['idle-timeout-ms']), processing: int(v['processing-timeout-ms']), error: int(v['error-timeout-ms']) }
  return {
    port: int(v.port),
    host: str(v.host),
    dataDir: str(v.data),
    log: { level },
    auth,
    tls: v['tls-cert'] === undefined
      ? undefined
      : { cert: await readText(v['tls-cert'] as string, 'TLS certificate'), key: await readText(v['tls-key'] as string, 'TLS key') },
    syncWrites: v.sync === true,
    encryptionKey: await encryptionKey(v['encryption-key-file']),
    maxLoadedWorkflows: int(v['max-workflows']),
    maxConnectionsPerWorkflow: int(v['max-connections-per-workflow']),
    rateLimit: v['rate-limit'] === undefined ? undefined : { perSecond: v['rate-limit'] as number, burst: int(v['rate-limit-burst']) },
    maxMessageSize: int(v['max-message-size']),
    quotaBytes: int(v['quota-bytes']),
    schemas: v.schemas === undefined ? undefined : await loadSchemas(v.schemas as string),
    evictionGraceMs: int(v['eviction-grace-ms']),
    keyframeEvery: int(v['keyframe-every']),
    writeAttempts: int(v['write-attempts']),
    pingIntervalMs: int(v['ping-interval-ms']),
    retention: { maxVersions: int(v['retention-max-versions']) as number, archiveAfterDays: int(v['retention-archive-after-days']) as number },
    snapshots: { keepRoutine: int(v['snapshots-keep-routine']) as number, recoveryDays: int(v['snapshots-recovery-days']) as number },
    deleteIdleAfterDays: int(v['delete-idle-after-days']),
    sweepIntervalMs: int(v['sweep-interval-ms']),
    lifecycle: { timeouts: timeouts as Record<string, number>, checkIntervalMs: int(v['deadline-check-ms']) },
    allowedOrigins: str(v['allow-origin'])?.split(','),
    mcp: v.mcp === true ? {} : undefined,
    ui: v['no-ui'] !== true,
    cluster: bus === undefined
      ? undefined
      : { redisUrl: bus, prefix: str(v['bus-prefix']), reconcileMs: int(v['reconcile-ms']), writerLeaseMs: int(v['writer-lease-ms']), forwardTimeoutMs: int(v['forward-timeout-ms']) }
  }
}

/** Resolves once SIGINT or SIGTERM arrives. */
const signalled = (): Promise<string> => new Promise(resolve => {
  const stop = (signal: string): void => {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    resolve(signal)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
})

/**
 * `--workers`: a count, `auto` (one per core), or unset: the count a LevelDB data directory was
 * written with, else one per core. `--mcp` defaults to 1, since it needs every shard in one process.
 */
const workerCount = async (v: Settings): Promise<number> => {
  const raw = str(v.workers)
  if (raw === 'auto') return os.availableParallelism()
  if (raw !== undefined) {
    const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN
    if (!Number.isSafeInteger(n) || n < 1 || n > 256) throw new UsageError(`--workers must be auto or an integer from 1 to 256, got ${JSON.stringify(raw)}`)
    return n
  }
  if (v.mcp === true) return 1
  if (v.store !== undefined) return os.availableParallelism()
  const layout = await readLayout(str(v.data) ?? './data')
  return layout.kind === 'empty' ? os.availableParallelism() : layout.workers
}

const storeText = (storeUrl: string | undefined, options: ServerOptions, shards = 1): string =>
  storeUrl === 'memory'
    ? 'memory'
    : isPostgresUrl(storeUrl)
      ? `postgres:${redact(storeUrl)}`
      : `leveldb:${path.resolve(options.dataDir ?? './data')}${shards > 1 ? ` in ${shards} shards` : ''}`

const readyLine = (url: string, storeUrl: string | undefined, options: ServerOptions, workers: number): string => {
  const busText = options.cluster === undefined ? 'none' : `redis:${redact(options.cluster.redisUrl)}`
  const workersText = workers > 1 ? `, workers ${workers}` : ''
  return `accord serving on ${url} (store ${storeText(storeUrl, options, workers)}, bus ${busText}, auth ${options.auth === undefined ? 'off' : 'on'}, tls ${options.tls === undefined ? 'off' : 'on'}${workersText})\n`
}

/** A worker of `--workers N` (see server/workers/): its shard's server on a private socket. */
const serveAsWorker = async (identity: WorkerIdentity, options: ServerOptions, storeUrl: string | undefined): Promise<number> => {
  let pgStore: Store | undefined
  return runWorker(async () => {
    pgStore = isPostgresUrl(storeUrl) ? await openPostgres(storeUrl) : undefined
    return createServer({
      ...options,
      // The primary terminates TLS and owns the port; this worker serves its socket.
      tls: undefined,
      socketPath: identity.socketPath,
      dataDir: identity.dataDir ?? options.dataDir,
      store: storeUrl === 'memory' ? createMemoryStore() : pgStore
    })
  }, {
    release: async () => { await pgStore?.close() },
    socketDir: path.dirname(identity.socketPath),
    describe: err => (options.cluster !== undefined ? describeRedisError(options.cluster.redisUrl, err) : undefined) ?? err
  })
}

/** The primary of `--workers N`: the public port, routing by workflow, N worker processes. */
const servePrimary = async (workers: number, options: ServerOptions, storeUrl: string | undefined): Promise<number> => {
  if (options.mcp !== undefined) throw new UsageError('--mcp needs --workers 1: an MCP session reads and writes workflows of every shard')
  const dataDirs = storeUrl === undefined ? await prepareLayout(options.dataDir ?? './data', workers) : Array.from({ length: workers }, () => null)
  const log = loggerOf(options.log)
  const pool = createWorkerPool({ workers, dataDirs, log })
  const shared = isPostgresUrl(storeUrl)
  const front = createFront({
    pool,
    workers,
    sharedStore: shared,
    sharedFeed: shared && options.cluster !== undefined,
    maxBodySize: options.maxMessageSize ?? 16 * 1024 * 1024,
    tls: options.tls,
    log
  })
  // The port first: a taken port is refused before any store opens.
  const { url } = await front.listen(options.port ?? 1234, options.host ?? '127.0.0.1')
  try {
    await pool.start()
  } catch (err) {
    await front.close()
    throw err
  }
  process.stdout.write(readyLine(url, storeUrl, options, workers))
  await signalled()
  const stopping = pool.stop()
  await front.close()
  const { flushed } = await stopping
  process.stdout.write(`accord stopped cleanly: ${flushed} workflows flushed, ${workers} workers stopped, store closed\n`)
  return 0
}

export const runServe = async (flags: Record<string, unknown>): Promise<number> => {
  const settings = await resolveSettings(flags, process.env)
  const options = await serverOptionsOf(settings)
  const storeUrl = str(settings.store)
  const identity = process.env[WORKER_ENV]
  if (identity !== undefined) return serveAsWorker(WorkerIdentitySchema.parse(JSON.parse(identity)), options, storeUrl)
  const workers = await workerCount(settings)
  if (workers > 1) return servePrimary(workers, options, storeUrl)
  if (storeUrl === undefined) await prepareLayout(options.dataDir ?? './data', 1)
  const pgStore = isPostgresUrl(storeUrl) ? await openPostgres(storeUrl) : undefined
  const server = createServer({ ...options, store: storeUrl === 'memory' ? createMemoryStore() : pgStore })
  const { url } = await server.listen().catch(async (err: unknown) => {
    await pgStore?.close()
    throw (options.cluster !== undefined ? describeRedisError(options.cluster.redisUrl, err) : undefined) ?? err
  })
  process.stdout.write(readyLine(url, storeUrl, options, 1))
  await signalled()
  const flushed = server.loadedWorkflows().length
  await server.close()
  await pgStore?.close()
  process.stdout.write(`accord stopped cleanly: ${flushed} workflows flushed, store closed\n`)
  return 0
}
