/**
 * `accord` command line. Exit codes: 0 ok, 1 runtime failure, 2 usage error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { createServer } from './server.ts'
import { LOG_LEVELS, type LogLevel } from './log.ts'
import { mintToken } from './auth.ts'
import path from 'node:path'
import { openLevelStore } from './store/level.ts'
import type { Store } from './store/store.ts'
import { verifyStore } from './verify.ts'

const USAGE = `Usage: accord <command> [options]

Commands:
  serve                     Start the sync server
    --port <n>              Port (default 1234; 0 picks a free one)
    --host <addr>           Interface to bind (default 127.0.0.1)
    --data <dir>            LevelDB directory (default ./data)
    --log-level <level>     debug | info | warn | error | silent (default info)
    --auth-secret <s>       Require HS256 tokens signed with this secret (or env ACCORD_AUTH_SECRET)
  get <workflowId>          Print a workflow's JSON state
    --server <url>          Server address (default ws://127.0.0.1:1234)
    --token <jwt>           Token for servers with auth (or env ACCORD_TOKEN)
    --timeout <ms>          Give up after this long (default 10000)
  verify                    Check every stored record and each workflow's history; exit 1 on problems
    --data <dir>            LevelDB directory (default ./data; the server must be stopped)
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

const serve = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    'log-level': { type: 'string' },
    'auth-secret': { type: 'string' }
  })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const level = (values['log-level'] ?? 'info') as LogLevel
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  const secret = (values['auth-secret'] as string | undefined) ?? process.env.ACCORD_AUTH_SECRET
  const server = createServer({
    port: toInt('port', values.port, 1234),
    host: values.host as string | undefined,
    dataDir: (values.data as string | undefined) ?? './data',
    log: { level },
    auth: secret === undefined ? undefined : { secret }
  })
  const { url } = await server.listen()
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
  return 0
}

const get = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, { server: { type: 'string' }, timeout: { type: 'string' }, token: { type: 'string' } })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length !== 1) throw new UsageError('get needs exactly one workflow id')
  const { openWorkflow } = await import('../src/index.ts')
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
const openOffline = async (dir: string): Promise<Store> => {
  try {
    return await openLevelStore(path.resolve(dir))
  } catch (err) {
    const message = (err as Error).message
    if (/lock/i.test(message)) throw new Error(`the store at ${dir} is in use (is a server running on it?): ${message}`)
    throw err
  }
}

const verify = async (args: string[]): Promise<number> => {
  const { values, positionals } = parse(args, { data: { type: 'string' } })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
  const store = await openOffline((values.data as string | undefined) ?? './data')
  try {
    const report = await verifyStore(store)
    for (const p of report.problems) {
      process.stdout.write(`PROBLEM ${p.workflowId ?? ''}${p.key === undefined ? '' : ` ${p.key}`}: ${p.problem}\n`)
    }
    process.stdout.write(`checked ${report.workflows} workflows, ${report.versions} versions: ${report.problems.length === 0 ? 'no problems' : `${report.problems.length} problems`}\n`)
    return report.problems.length === 0 ? 0 : 1
  } finally {
    await store.close()
  }
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
