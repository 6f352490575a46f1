/**
 * `accord` command line. Exit codes: 0 ok, 1 runtime failure, 2 usage error (cli-errors.ts).
 * Results go to stdout (one line, stable wording, for scripts); progress of long commands goes
 * to stderr, and only when it is a terminal (progress.ts).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { AccordError } from '../../src/model/errors.ts'
import { isValidWorkflowId } from '../../src/model/workflow-id.ts'
import { mintToken } from '../http/auth.ts'
import { verifyStore, verifyStores, type VerifyReport } from './verify.ts'
import { reshardStore } from './reshard.ts'
import { readLayout } from '../workers/layout.ts'
import { shardOf } from '../workers/shard-of.ts'
import { restoreBackup, writeBackup } from './backup.ts'
import { rekeyStore } from './rekey.ts'
import { requireStore } from './offline.ts'
import { createProgress } from './progress.ts'
import { NoDataError, ServiceError, UnknownWorkflowError, UsageError } from './cli-errors.ts'
import { describeServerError } from './service-errors.ts'
import { settingFlags, settingsUsage } from './serve-settings.ts'
import { encryptionKey, isPostgresUrl, openPostgres, runServe } from './serve.ts'

const USAGE = `Usage: accord <command> [options]

Commands:
  serve                     Start the sync server. Every setting is a flag, an environment
                            variable, and a key of --config (flag > env > config > default):
${settingsUsage()}
  get <workflowId>          Print a workflow's JSON state (exit 1 if the server has no such workflow)
    --server <url>          Server address (default ws://127.0.0.1:1234; http(s):// works too)
    --token <jwt>           Token for servers with auth (or env ACCORD_TOKEN)
    --timeout <ms>          Give up after this long (default 10000)
  mcp                       Serve MCP (Model Context Protocol) over stdio for MCP clients
    --server <url>          Accord server (default ws://127.0.0.1:1234)
    --token <jwt>           Token; its sub is the agent id of every write (or env ACCORD_TOKEN)
    --agent <id>            Agent id on servers without auth (default mcp)
  verify                    Check every stored record and each workflow's history; exit 1 on problems
    --data <dir>            LevelDB directory, every shard of it (default ./data; server stopped)
    --encryption-key-file f The store's key (or env ACCORD_ENCRYPTION_KEY)
    --store <url>           postgres://...[?schema=name] instead (servers may keep running)
  backup <dir>              Copy the running server's store into <dir> (consistent, checksummed, gzipped)
    --server <url>          Server address (default http://127.0.0.1:1234)
    --token <jwt>           Token with scope admin:* for servers with auth (or env ACCORD_TOKEN)
  restore-backup <dir>      Restore a backup into a new data dir, verified before it is used
    --data <dir>            Target LevelDB directory (default ./data; must be empty or absent)
    --encryption-key-file f The key of the backed-up store (or env ACCORD_ENCRYPTION_KEY)
  rekey                     Rewrite every stored value under a new encryption key (server stopped)
    --data <dir>            LevelDB directory (default ./data)
    --encryption-key-file f The current key (or env ACCORD_ENCRYPTION_KEY); none for a plain store
    --new-key-file <f>      The new key (or env ACCORD_NEW_ENCRYPTION_KEY); or --decrypt for none
  reshard                   Lay a LevelDB data dir out for another --workers count (server stopped)
    --data <dir>            LevelDB directory (default ./data)
    --workers <n>           The new worker count (1 for one store)
    --encryption-key-file f The store's key (or env ACCORD_ENCRYPTION_KEY)
  token                     Mint a development token (HS256)
    --secret <s>            Signing secret (or env ACCORD_AUTH_SECRET)
    --agent <id>            Agent id (the token's subject)
    --scope <scope>         Repeatable: read|write|admin:<workflow pattern>[:<path pattern>]
    --expires <duration>    e.g. 15m, 1h, 7d (default 1h)

Options:
  -h, --help                Show this help
  -v, --version             Print the version
`

type Values = Record<string, unknown>

/** Parses a command's options; returns null when --help was asked for (usage already printed). */
const parse = (args: string[], options: ParseArgsConfig['options'], positionals: [number, number], what: string): { values: Values, positionals: string[] } | null => {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (parsed.values.help === true) {
    process.stdout.write(USAGE)
    return null
  }
  const [min, max] = positionals
  const n = parsed.positionals.length
  if (n > max) throw new UsageError(`unexpected argument ${parsed.positionals[max] as string}`)
  if (n < min) throw new UsageError(`${what}`)
  return { values: parsed.values, positionals: parsed.positionals }
}

/** An integer flag, checked before anything runs. */
const intFlag = (name: string, value: unknown, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number => {
  if (value === undefined) return fallback
  const n = typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  return n
}

const printProblems = (problems: Array<{ workflowId?: string, key?: string, problem: string }>): void => {
  for (const p of problems) process.stdout.write(`PROBLEM ${p.workflowId ?? ''}${p.key === undefined ? '' : ` ${p.key}`}: ${p.problem}\n`)
}

/** The package's version, from the package.json above this file (in server/ or dist/server/). */
const version = (): string => {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json')
    if (!existsSync(file)) continue
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string, version?: string }
    if (pkg.name === '@accord-state/accord') return pkg.version ?? 'unknown'
  }
  return 'unknown'
}

const serve = async (args: string[]): Promise<number> => {
  const parsed = parse(args, settingFlags(), [0, 0], '')
  return parsed === null ? 0 : runServe(parsed.values)
}

const httpBase = (server: unknown, fallback: string): string =>
  (typeof server === 'string' ? server : fallback).replace(/^ws(s?):/, 'http$1:').replace(/\/+$/, '')

/** The `message` of an Accord error response body, else the raw text. */
const errorText = async (res: Response): Promise<string> => {
  const text = await res.text()
  try {
    const body = JSON.parse(text) as { error?: { message?: string } }
    return body.error?.message ?? text
  } catch {
    return text
  }
}

const get = async (args: string[]): Promise<number> => {
  const parsed = parse(args, { server: { type: 'string' }, timeout: { type: 'string' }, token: { type: 'string' } }, [1, 1], 'get needs exactly one workflow id')
  if (parsed === null) return 0
  const id = parsed.positionals[0] as string
  if (!isValidWorkflowId(id)) throw new UsageError(`invalid workflow id ${JSON.stringify(id)}`)
  const timeoutMs = intFlag('timeout', parsed.values.timeout, 10_000, 1)
  const base = httpBase(parsed.values.server, 'http://127.0.0.1:1234')
  const token = (parsed.values.token as string | undefined) ?? process.env.ACCORD_TOKEN
  let res: Response
  try {
    res = await fetch(`${base}/v1/workflows/${encodeURIComponent(id)}`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeoutMs)
    })
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') throw new ServiceError(`the Accord server at ${base} did not answer within ${timeoutMs} ms`)
    throw describeServerError(base, err)
  }
  if (res.status === 404) throw new UnknownWorkflowError(id, base)
  if (!res.ok) throw new ServiceError(`the server at ${base} refused to read ${id} (${res.status}): ${await errorText(res)}`)
  const body = await res.json() as { state?: unknown }
  process.stdout.write(JSON.stringify(body.state ?? {}, null, 2) + '\n')
  return 0
}

/** Every shard of a LevelDB data dir, each checked alone and for workflows its worker does not own. */
const verifyData = async (data: string, key: Uint8Array | undefined, onProgress: (done: number, total: number) => void): Promise<VerifyReport> => {
  const layout = await readLayout(data)
  if (layout.kind === 'empty') throw new NoDataError(data)
  for (const dir of layout.dirs) await requireStore(dir)
  return verifyStores(layout.dirs, key, {
    onProgress,
    also: async (store, i) => layout.kind !== 'sharded'
      ? []
      : (await store.listWorkflows()).filter(m => shardOf(m.id, layout.workers) !== i)
          .map(m => ({ workflowId: m.id, problem: `stored in shard ${i}, but worker ${shardOf(m.id, layout.workers)} of ${layout.workers} owns it (no client would reach it)` }))
  })
}

const verify = async (args: string[]): Promise<number> => {
  const parsed = parse(args, { data: { type: 'string' }, store: { type: 'string' }, 'encryption-key-file': { type: 'string' } }, [0, 0], '')
  if (parsed === null) return 0
  const { values } = parsed
  const storeUrl = values.store as string | undefined
  if (storeUrl !== undefined && !isPostgresUrl(storeUrl)) throw new UsageError('--store must be a postgres:// URL')
  if (storeUrl !== undefined && (values.data !== undefined || values['encryption-key-file'] !== undefined)) {
    throw new UsageError('--store takes neither --data nor --encryption-key-file (those are for LevelDB)')
  }
  const progress = createProgress('verify')
  const onProgress = (done: number, total: number): void => { progress.update({ done, total, unit: 'workflows' }) }
  let report: VerifyReport
  if (storeUrl !== undefined) {
    const store = await openPostgres(storeUrl)
    try {
      report = await verifyStore(store, { online: true, onProgress })
    } finally {
      await store.close()
    }
  } else {
    report = await verifyData((values.data as string | undefined) ?? './data', await encryptionKey(values['encryption-key-file']), onProgress)
  }
  progress.end()
  printProblems(report.problems)
  process.stdout.write(`checked ${report.workflows} workflows, ${report.versions} versions: ${report.problems.length === 0 ? 'no problems' : `${report.problems.length} problems`}\n`)
  return report.problems.length === 0 ? 0 : 1
}

const reshard = async (args: string[]): Promise<number> => {
  const parsed = parse(args, { data: { type: 'string' }, workers: { type: 'string' }, 'encryption-key-file': { type: 'string' } }, [0, 0], '')
  if (parsed === null) return 0
  if (parsed.values.workers === undefined) throw new UsageError('reshard needs --workers <n>')
  const workers = intFlag('workers', parsed.values.workers, 1, 1, 256)
  const data = (parsed.values.data as string | undefined) ?? './data'
  const progress = createProgress('reshard')
  const result = await reshardStore(data, workers, await encryptionKey(parsed.values['encryption-key-file']), records => { progress.update({ done: records, unit: 'records' }) })
  progress.end()
  if (result.from === result.to) {
    process.stdout.write(`${data} is already laid out for ${workers} worker${workers === 1 ? '' : 's'}: nothing to do\n`)
    return 0
  }
  printProblems(result.report.problems)
  if (result.previous === null) {
    process.stdout.write(`the resharded store did not verify; ${data} was left untouched\n`)
    return 1
  }
  process.stdout.write(`resharded ${result.report.workflows} workflows (${result.records} records) from ${result.from} to ${result.to} worker${result.to === 1 ? '' : 's'}; verified. The old store is kept at ${result.previous}\n`)
  return 0
}

const backup = async (args: string[]): Promise<number> => {
  const parsed = parse(args, { server: { type: 'string' }, token: { type: 'string' } }, [1, 1], 'backup needs exactly one target directory')
  if (parsed === null) return 0
  const dir = parsed.positionals[0] as string
  const server = httpBase(parsed.values.server, 'http://127.0.0.1:1234')
  const token = (parsed.values.token as string | undefined) ?? process.env.ACCORD_TOKEN
  const res = await fetch(`${server}/v1/admin/backup`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    .catch((err: unknown) => { throw describeServerError(server, err) })
  if (!res.ok || res.body === null) throw new ServiceError(`the server at ${server} refused the backup (${res.status}): ${await errorText(res)}`)
  const progress = createProgress('backup')
  const manifest = await writeBackup(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), dir, server,
    p => { progress.update({ done: p.records, unit: 'records', bytes: p.bytes }) })
  progress.end()
  process.stdout.write(`backed up ${manifest.workflows.length} workflows, ${manifest.records} records (${manifest.bytes} bytes, ${manifest.storedBytes ?? manifest.bytes} on disk, sha256 ${manifest.sha256}) to ${dir}\n`)
  return 0
}

const restore = async (args: string[]): Promise<number> => {
  const parsed = parse(args, { data: { type: 'string' }, 'encryption-key-file': { type: 'string' } }, [1, 1], 'restore-backup needs exactly one backup directory')
  if (parsed === null) return 0
  const data = (parsed.values.data as string | undefined) ?? './data'
  const records = createProgress('restore')
  const verifying = createProgress('verify')
  const { manifest, report } = await restoreBackup(parsed.positionals[0] as string, data, await encryptionKey(parsed.values['encryption-key-file']), {
    records: p => { records.update({ done: p.records, total: p.total, unit: 'records', bytes: p.bytes }) },
    verify: (done, total) => { records.end(); verifying.update({ done, total, unit: 'workflows' }) }
  })
  records.end()
  verifying.end()
  printProblems(report.problems)
  if (report.problems.length > 0) {
    process.stdout.write(`the backup did not verify; ${data} was left untouched\n`)
    return 1
  }
  process.stdout.write(`restored ${manifest.workflows.length} workflows, ${report.versions} versions (backup of ${manifest.createdAt}) into ${data}: verified\n`)
  return 0
}

const rekey = async (args: string[]): Promise<number> => {
  const parsed = parse(args, {
    data: { type: 'string' },
    'encryption-key-file': { type: 'string' },
    'new-key-file': { type: 'string' },
    decrypt: { type: 'boolean' }
  }, [0, 0], '')
  if (parsed === null) return 0
  const { values } = parsed
  const newKey = values.decrypt === true ? undefined : await encryptionKey(values['new-key-file'], 'ACCORD_NEW_ENCRYPTION_KEY')
  if (newKey === undefined && values.decrypt !== true) throw new UsageError('rekey needs --new-key-file (or ACCORD_NEW_ENCRYPTION_KEY), or --decrypt')
  const data = (values.data as string | undefined) ?? './data'
  const rewriting = createProgress('rekey')
  const verifying = createProgress('verify')
  const result = await rekeyStore(data, await encryptionKey(values['encryption-key-file']), newKey, {
    records: p => { rewriting.update({ done: p.records, unit: 'records' }) },
    verify: (done, total) => { rewriting.end(); verifying.update({ done, total, unit: 'workflows' }) }
  })
  rewriting.end()
  verifying.end()
  printProblems(result.report.problems)
  if (result.report.problems.length > 0) {
    process.stdout.write(`the rewritten store did not verify; ${data} was left untouched\n`)
    return 1
  }
  process.stdout.write(`rewrote ${result.records} records ${newKey === undefined ? 'unencrypted' : 'under the new key'}; verified. The old store is kept at ${result.previous}\n`)
  return 0
}

const token = async (args: string[]): Promise<number> => {
  const parsed = parse(args, {
    secret: { type: 'string' },
    agent: { type: 'string' },
    scope: { type: 'string', multiple: true },
    expires: { type: 'string' }
  }, [0, 0], '')
  if (parsed === null) return 0
  const { values } = parsed
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

// The MCP command loads the optional MCP SDK: imported only when asked for.
const mcp = async (args: string[]): Promise<number> => (await import('./mcp-command.ts')).mcpCommand(args)

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve, get, token, verify, backup, 'restore-backup': restore, rekey, reshard, mcp
}

export const main = async (argv: string[]): Promise<number> => {
  const [command, ...rest] = argv
  try {
    if (command === '-v' || command === '--version' || command === 'version') {
      process.stdout.write(`accord ${version()}\n`)
      return 0
    }
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    }
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined
    if (run === undefined) throw new UsageError(`unknown command ${command}`)
    return await run(rest)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`accord: ${err.message}\n\nRun accord --help for every command and option.\n`)
      return 2
    }
    const exitCode = (err as { exitCode?: number }).exitCode
    if (err instanceof AccordError && exitCode !== undefined) {
      process.stderr.write(`accord: ${err.message}\n`)
      return exitCode
    }
    const e = err as { code?: string, message?: string }
    process.stderr.write(`accord: ${e.code !== undefined ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`)
    return 1
  }
}
