/**
 * The options of createServer (server.ts), each with its default; `accord serve` maps its flags
 * and environment onto them (server/ops/serve.ts).
 *
 *   createServer({ port: 0, dataDir: './data', auth: { secret }, retention: { maxVersions: 500 } })
 */
import type { ZodType } from 'zod'
import type { AgentStatus } from '../src/model/runtime.ts'
import type { RetentionPolicy } from '../src/store/retention.ts'
import type { Store } from '../src/store/store.ts'
import type { SnapshotPolicy } from './history/history.ts'
import type { ConflictResolver } from './hooks/resolver.ts'
import type { AuthOptions } from './http/auth.ts'
import type { McpEndpointOptions } from './http/mcp-endpoint.ts'
import type { Logger, LoggerOptions } from './ops/log.ts'

export interface ServerOptions {
  /** Default 1234; 0 picks a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** Listen on this Unix socket instead of host:port (a worker of `accord serve --workers`). */
  socketPath?: string
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
  snapshots?: Partial<SnapshotPolicy>
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
