/**
 * `accord` command line. Exit codes: 0 ok, 1 runtime failure, 2 usage error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { createServer } from '../server.ts'
import { LOG_LEVELS, type LogLevel } from './log.ts'
import { mintToken } from '../http/auth.ts'
import path from 'node:path'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { openLevelStore } from '../../src/store/level.ts'
import { createMemoryStore } from '../../src/store/memory.ts'
import type { Store } from '../../src/store/store.ts'
import { verifyStore } from './verify.ts'
import { restoreBackup, writeBackup } from './backup.ts'
import { rekeyStore } from './rekey.ts'
import { parseEncryptionKey } from '../../src/store/frame.ts'

const USAGE = `Usage: accord <command> [options]

Commands:
  serve                     Start the sync server
    --port <n>              Port (default 1234; 0 picks a free one)
    --host <addr>           Interface to bind (default 127.0.0.1)
    --data <dir>            LevelDB directory (default ./data)
    --sync                  fsync every LevelDB write batch (survives power loss; slower)
    --encryption-key-file f Encrypt values at rest with this AES-256 key (or env ACCORD_ENCRYPTION_KEY;
                            64 hex digits or base64; verify and restore-backup take it too)
    --store <url>           postgres://user@host/db[?schema=name]: PostgreSQL instead of LevelDB
    --bus <url>             redis://host:port: run as one of several servers on the same --store
    --bus-prefix <p>        Redis key prefix (default accord:), one per cluster
    --log-level <level>     debug | info | warn | error | silent (default info)
    --allow-origin <origin> Without auth: also let pages of this origin connect (repeatable)
    --no-ui                 Do not serve the inspector at /ui
    --max-workflows <n>     Workflows in memory; idle ones are evicted LRU first (default unlimited)
    --max-connections-per-workflow <n>   (default unlimited; more are closed with 4503)
    --rate-limit <n>        Updates per second per connection (default unlimited; over it: 4429)
    --auth-secret <s>       Require HS256 tokens signed with this secret (or env ACCORD_AUTH_SECRET)
    --mcp                   Also serve MCP (Streamable HTTP) at /mcp, behind the same auth
  get <workflowId>          Print a workflow's JSON state
    --server <url>          Server address (default ws://127.0.0.1:1234)
    --token <jwt>           Token for servers with auth (or env ACCORD_TOKEN)
    --timeout <ms>          Give up after this long (default 10000)
  mcp                       Serve MCP (Model Context Protocol) over stdio for MCP clients
    --server <url>          Accord server (default ws://127.0.0.1:1234)
    --token <jwt>           Token; its sub is the agent id of every write (or env ACCORD_TOKEN)
    --agent <id>            Agent id on servers without auth (default mcp)
  verify                    Check every stored record and each workflow's history; exit 1 on problems
    --data <dir>            LevelDB directory (default ./data; the server must be stopped)
    --store <url>           postgres://...[?schema=name] instead (servers may keep running)
  backup <dir>              Copy the running server's store into <dir> (consistent, checksummed)
    --server <url>          Server address (default http://127.0.0.1:1234)
    --token <jwt>           Token with scope admin:* for servers with auth (or env ACCORD_TOKEN)
  restore-backup <dir>      Restore a backup into a new data dir, verified before it is used
    --data <dir>            Target LevelDB directory (default ./data; must be empty or absent)
  rekey                     Rewrite every stored value under a new encryption key (server stopped)
    --data <dir>            LevelDB directory (default ./data)
    --encryption-key-file f The current key (or env ACCORD_ENCRYPTION_KEY); none for a plain store
    --new-key-file <f>      The new key (or env ACCORD_NEW_ENCRYPTION_KEY); or --decrypt for none
  token                     Mint a development token (HS256)
    --secret <s>            Signing secret (or env ACCORD_AUTH_SECRET)
    --agent <id>            Agent id (the token's subject)
    --scope <scope>         Repeatable: read|write|admin:<workflow pattern>[:<path pattern>]
    --expires <duration>    e.g. 15m, 1h, 7d (default 1h)

Options:
  -h, --help                Show this help
`

class UsageError extends Error {}

const parse = (args: string[], options: ParseArgsConfig['options']): ReturnType<typeof parseArgs> => {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

const toInt = (name: string, value: unknown, fallback: number): number => {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got ${String(value)}`)
  return n
}

/** The at-rest key from --encryption-key-file, else the environment (64 hex digits or base64). */
const encryptionKey = async (file: unknown, env = 'ACCORD_ENCRYPTION_KEY'): Promise<Uint8Array | undefined> => {
  const text = typeof file === 'string' ? await readFile(file, 'utf8') : process.env[env]
  return text === undefined || text.trim() === '' ? undefined : parseEncryptionKey(text)
}

const optionalInt = (name: string, value: unknown): number | undefined =>
  value === undefined ? undefined : toInt(name, value, 0)

const isPostgresUrl = (url: string | undefined): url is string => url !== undefined && /^postgres(ql)?:\/\//.test(url)
/** Loaded on demand: LevelDB users never load the PostgreSQL driver. */
const openPostgres = async (url: string): Promise<Store> => (await import('../store/postgres.ts')).openPostgresStore(url)

const serve = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    'log-level': { type: 'string' },
    'auth-secret': { type: 'string' },
    'allow-origin': { type: 'string', multiple: true },
    'max-workflows': { type: 'string' },
    'max-connections-per-workflow': { type: 'string' },
    'rate-limit': { type: 'string' },
    bus: { type: 'string' },
    sync: { type: 'boolean' },
    'encryption-key-file': { type: 'string' },
    'bus-prefix': { type: 'string' },
    mcp: { type: 'boolean' },
    'no-ui': { type: 'boolean' },
    store: { type: 'string' } // postgres://... (hidden, for benchmarks: memory switches persistence off)
  })
  const storeUrl = values.store as string | undefined
  if (storeUrl !== undefined && storeUrl !== 'memory' && !isPostgresUrl(storeUrl)) throw new UsageError('--store must be a postgres:// URL')
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const level = (values['log-level'] ?? 'info') as LogLevel
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  const secret = (values['auth-secret'] as string | undefined) ?? process.env.ACCORD_AUTH_SECRET
  const busUrl = values.bus as string | undefined
  if (busUrl !== undefined && !/^rediss?:\/\//.test(busUrl)) throw new UsageError('--bus must be a redis:// URL')
  if (busUrl !== undefined && !isPostgresUrl(storeUrl)) throw new UsageError('--bus needs a shared store: --store postgres://...')
  const pgStore = isPostgresUrl(storeUrl) ? await openPostgres(storeUrl) : undefined
  const server = createServer({
    port: toInt('port', values.port, 1234),
    host: values.host as string | undefined,
    dataDir: (values.data as string | undefined) ?? './data',
    store: storeUrl === 'memory' ? createMemoryStore() : pgStore,
    log: { level },
    auth: secret === undefined ? undefined : { secret },
    allowedOrigins: values['allow-origin'] as string[] | undefined,
    syncWrites: values.sync === true,
    encryptionKey: await encryptionKey(values['encryption-key-file']),
    maxLoadedWorkflows: optionalInt('max-workflows', values['max-workflows']),
    maxConnectionsPerWorkflow: optionalInt('max-connections-per-workflow', values['max-connections-per-workflow']),
    rateLimit: values['rate-limit'] === undefined ? undefined : { perSecond: toInt('rate-limit', values['rate-limit'], 0) },
    cluster: busUrl === undefined ? undefined : { redisUrl: busUrl, prefix: values['bus-prefix'] as string | undefined },
    mcp: values.mcp === true ? {} : undefined,
    ui: values['no-ui'] !== true
  })
  const { url } = await server.listen().catch(async err => { await pgStore?.close(); throw err })
  process.stdout.write(`accord serving on ${url}\n`)
  await new Promise<void>(resolve => {
    const stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  await server.close()
  await pgStore?.close()
  return 0
}

const get = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, { server: { type: 'string' }, timeout: { type: 'string' }, token: { type: 'string' } })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length !== 1) throw new UsageError('get needs exactly one workflow id')
  const { openWorkflow } = await import('../../src/node/index.ts')
  const handle = openWorkflow(positionals[0] as string, {
    url: (values.server as string | undefined) ?? 'ws://127.0.0.1:1234',
    agentId: 'accord-cli',
    token: (values.token as string | undefined) ?? process.env.ACCORD_TOKEN,
    recovery: { maxAttempts: 3 }
  })
  try {
    await handle.whenSynced({ timeoutMs: toInt('timeout', values.timeout, 10_000) })
    process.stdout.write(JSON.stringify(handle.state, null, 2) + '\n')
    return 0
  } finally {
    await handle.close()
  }
}

/** Opens the LevelDB store of a stopped server, with a clear message when it is in use. */
const openOffline = async (dir: string, encryptionKey?: Uint8Array): Promise<Store> => {
  try {
    return await openLevelStore(path.resolve(dir), { encryptionKey })
  } catch (err) {
    // LevelDB reports a held lock as the cause of the open failure.
    const chain: string[] = []
    for (let e: unknown = err; e instanceof Error; e = e.cause) chain.push(`${(e as { code?: string }).code ?? ''} ${e.message}`)
    if (chain.some(m => /lock/i.test(m))) throw new Error(`the store at ${dir} is in use (is a server running on it?)`)
    throw err
  }
}

const verify = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, { data: { type: 'string' }, store: { type: 'string' }, 'encryption-key-file': { type: 'string' } })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const storeUrl = values.store as string | undefined
  if (storeUrl !== undefined && !isPostgresUrl(storeUrl)) throw new UsageError('--store must be a postgres:// URL')
  if (storeUrl !== undefined && (values.data !== undefined || values['encryption-key-file'] !== undefined)) {
    throw new UsageError('--store takes neither --data nor --encryption-key-file (those are for LevelDB)')
  }
  const store = storeUrl !== undefined
    ? await openPostgres(storeUrl)
    : await openOffline((values.data as string | undefined) ?? './data', await encryptionKey(values['encryption-key-file']))
  try {
    const report = await verifyStore(store, { online: storeUrl !== undefined })
    for (const p of report.problems) {
      process.stdout.write(`PROBLEM ${p.workflowId ?? ''}${p.key === undefined ? '' : ` ${p.key}`}: ${p.problem}\n`)
    }
    process.stdout.write(`checked ${report.workflows} workflows, ${report.versions} versions: ${report.problems.length === 0 ? 'no problems' : `${report.problems.length} problems`}\n`)
    return report.problems.length === 0 ? 0 : 1
  } finally {
    await store.close()
  }
}

const backup = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, { server: { type: 'string' }, token: { type: 'string' } })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length !== 1) throw new UsageError('backup needs exactly one target directory')
  const server = ((values.server as string | undefined) ?? 'http://127.0.0.1:1234').replace(/^ws/, 'http').replace(/\/$/, '')
  const token = (values.token as string | undefined) ?? process.env.ACCORD_TOKEN
  const res = await fetch(`${server}/v1/admin/backup`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  if (!res.ok || res.body === null) {
    const body = await res.text()
    throw new Error(`the server refused the backup (${res.status}): ${body}`)
  }
  const manifest = await writeBackup(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), positionals[0] as string, server)
  process.stdout.write(`backed up ${manifest.workflows.length} workflows, ${manifest.records} records (${manifest.bytes} bytes, sha256 ${manifest.sha256}) to ${positionals[0]}\n`)
  return 0
}

const restore = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, { data: { type: 'string' }, 'encryption-key-file': { type: 'string' } })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length !== 1) throw new UsageError('restore-backup needs exactly one backup directory')
  const data = (values.data as string | undefined) ?? './data'
  const { manifest, report } = await restoreBackup(positionals[0] as string, data, await encryptionKey(values['encryption-key-file']))
  for (const p of report.problems) process.stdout.write(`PROBLEM ${p.workflowId ?? ''}${p.key === undefined ? '' : ` ${p.key}`}: ${p.problem}\n`)
  if (report.problems.length > 0) {
    process.stdout.write(`the backup did not verify; ${data} was left untouched\n`)
    return 1
  }
  process.stdout.write(`restored ${manifest.workflows.length} workflows, ${report.versions} versions (backup of ${manifest.createdAt}) into ${data}: verified\n`)
  return 0
}

const rekey = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, {
    data: { type: 'string' },
    'encryption-key-file': { type: 'string' },
    'new-key-file': { type: 'string' },
    decrypt: { type: 'boolean' }
  })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const newKey = values.decrypt === true ? undefined : await encryptionKey(values['new-key-file'], 'ACCORD_NEW_ENCRYPTION_KEY')
  if (newKey === undefined && values.decrypt !== true) throw new UsageError('rekey needs --new-key-file (or ACCORD_NEW_ENCRYPTION_KEY), or --decrypt')
  const data = (values.data as string | undefined) ?? './data'
  const result = await rekeyStore(data, await encryptionKey(values['encryption-key-file']), newKey)
  for (const p of result.report.problems) process.stdout.write(`PROBLEM ${p.workflowId ?? ''}${p.key === undefined ? '' : ` ${p.key}`}: ${p.problem}\n`)
  if (result.report.problems.length > 0) {
    process.stdout.write(`the rewritten store did not verify; ${data} was left untouched\n`)
    return 1
  }
  process.stdout.write(`rewrote ${result.records} records ${newKey === undefined ? 'unencrypted' : 'under the new key'}; verified. The old store is kept at ${result.previous}\n`)
  return 0
}

const token = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, {
    secret: { type: 'string' },
    agent: { type: 'string' },
    scope: { type: 'string', multiple: true },
    expires: { type: 'string' }
  })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const secret = (values.secret as string | undefined) ?? process.env.ACCORD_AUTH_SECRET
  if (secret === undefined) throw new UsageError('token needs --secret (or ACCORD_AUTH_SECRET)')
  if (values.agent === undefined) throw new UsageError('token needs --agent')
  const scopes = (values.scope as string[] | undefined) ?? []
  if (scopes.length === 0) throw new UsageError('token needs at least one --scope, e.g. --scope "write:*"')
  try {
    const jwt = await mintToken({ secret, agentId: values.agent as string, scopes, expiresIn: (values.expires as string | undefined) ?? '1h' })
    process.stdout.write(jwt + '\n')
    return 0
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

export const main = async (argv: string[]): Promise<number> => {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'serve':
        return await serve(rest)
      case 'get':
        return await get(rest)
      case 'token':
        return await token(rest)
      case 'verify':
        return await verify(rest)
      case 'backup':
        return await backup(rest)
      case 'restore-backup':
        return await restore(rest)
      case 'rekey':
        return await rekey(rest)
      case 'mcp':
        return await (await import('./mcp-command.ts')).mcpCommand(rest)
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE)
        return command === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command ${command}`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`accord: ${err.message}\n\n${USAGE}`)
      return 2
    }
    const e = err as { code?: string, message?: string }
    process.stderr.write(`accord: ${e.code !== undefined ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`)
    return 1
  }
}
