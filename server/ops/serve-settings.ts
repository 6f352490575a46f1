/**
 * Every setting of `accord serve`, in one table: its flag, its environment variable, its key in
 * `--config accord.json` (the flag's name), its type and its default. The command line, the
 * environment and the config file are read from this table, and every value is checked here,
 * before anything starts (a port of 99999 never opens a store).
 *
 *   const values = await resolveSettings(parsedFlags, process.env)   // flag > env > file > default
 *   values['port'] // 1234
 */
import { readFile } from 'node:fs/promises'
import { UsageError } from './cli-errors.ts'
import { LOG_LEVELS } from './log.ts'

/** `list`: a repeatable flag, a comma-separated variable, an array (or string) in the config file. */
export type SettingKind = 'string' | 'boolean' | 'int' | 'port' | 'list'

export interface Setting {
  flag: string
  env: string
  kind: SettingKind
  /** The default as documented; undefined: unset (the server's own behaviour applies). */
  default?: string | number | boolean
  /** Smallest accepted integer (default 0). */
  min?: number
  /** Placeholder shown in the usage text. */
  arg?: string
  help: string
}

const s = (flag: string, kind: SettingKind, help: string, extra: Partial<Setting> = {}): Setting =>
  ({ flag, env: `ACCORD_${flag.toUpperCase().replace(/-/g, '_')}`, kind, help, ...extra })

export const SERVE_SETTINGS: readonly Setting[] = [
  s('config', 'string', 'JSON file with any of these settings, keyed by flag name', { arg: 'file' }),
  s('port', 'port', 'Port (0 picks a free one)', { default: 1234, arg: 'n' }),
  s('host', 'string', 'Interface to bind; anything but loopback needs auth', { default: '127.0.0.1', arg: 'addr' }),
  s('data', 'string', 'LevelDB directory (created if missing)', { default: './data', arg: 'dir' }),
  s('workers', 'string', 'Worker processes, each owning a shard of the workflows: a number, or auto (one per core). Default: the count --data was written with, else one per core (1 with --mcp)', { arg: 'n|auto' }),
  s('store', 'string', 'postgres://user@host/db[?schema=name]: PostgreSQL instead of LevelDB', { arg: 'url' }),
  s('bus', 'string', 'redis://host:port: one of several servers on the same --store', { arg: 'url' }),
  s('bus-prefix', 'string', 'Redis key prefix, one per cluster', { default: 'accord:', arg: 'p' }),
  s('sync', 'boolean', 'fsync every LevelDB write batch (survives power loss; slower)', { default: false }),
  s('encryption-key-file', 'string', 'AES-256 key file (64 hex digits or base64) encrypting values at rest; or the key itself in ACCORD_ENCRYPTION_KEY', { arg: 'file' }),
  s('log-level', 'string', `${LOG_LEVELS.join(' | ')}`, { default: 'info', arg: 'level' }),
  s('auth-secret', 'string', 'Require HS256 tokens signed with this secret', { arg: 's' }),
  s('auth-public-key-file', 'string', 'Require RS256/ES256/EdDSA tokens verified with this PEM public key', { arg: 'file' }),
  s('auth-issuer', 'string', 'Required token issuer (iss)', { arg: 's' }),
  s('auth-audience', 'string', 'Required token audience (aud)', { arg: 's' }),
  s('tls-cert', 'string', 'PEM certificate (chain): serve https:// and wss:// (needs --tls-key)', { arg: 'file' }),
  s('tls-key', 'string', 'PEM private key of --tls-cert', { arg: 'file' }),
  s('allow-origin', 'list', 'Without auth: also let pages of this origin connect (repeatable; comma-separated in the variable)', { arg: 'origin' }),
  s('mcp', 'boolean', 'Also serve MCP (Streamable HTTP) at /mcp, behind the same auth (needs @modelcontextprotocol/sdk)', { default: false }),
  s('no-ui', 'boolean', 'Do not serve the inspector at /ui', { default: false }),
  s('max-workflows', 'int', 'Workflows in memory; idle ones are evicted LRU first (unset: unlimited)', { min: 1, arg: 'n' }),
  s('max-connections-per-workflow', 'int', 'More are closed with 4503 (unset: unlimited)', { min: 1, arg: 'n' }),
  s('rate-limit', 'int', 'Updates per second per connection; over it: 4429 (unset: unlimited)', { min: 1, arg: 'n' }),
  s('rate-limit-burst', 'int', 'Burst above --rate-limit (default: one second of it)', { min: 1, arg: 'n' }),
  s('max-message-size', 'int', 'Largest accepted message in bytes; larger closes with 4413', { default: 16 * 1024 * 1024, min: 1, arg: 'bytes' }),
  s('quota-bytes', 'int', 'Stored bytes per workflow above which writes are refused (unset: no quota)', { min: 1, arg: 'bytes' }),
  s('schemas', 'string', 'ES module whose default export maps workflow ids to zod schemas (or is a function id => schema)', { arg: 'module' }),
  s('eviction-grace-ms', 'int', 'How long a workflow stays in memory after its last connection left', { default: 5000, arg: 'ms' }),
  s('keyframe-every', 'int', 'A full-state keyframe every this many versions (bounds cold-load replay)', { default: 100, min: 1, arg: 'n' }),
  s('write-attempts', 'int', 'Write attempts before a workflow is stopped', { default: 4, min: 1, arg: 'n' }),
  s('ping-interval-ms', 'int', 'WebSocket pings that detect dead peers', { default: 30000, min: 1, arg: 'ms' }),
  s('retention-max-versions', 'int', 'Newest versions kept hot per workflow; older ones are archived', { default: 100, min: 1, arg: 'n' }),
  s('retention-archive-after-days', 'int', 'Versions older than this are archived even inside the hot window', { default: 30, arg: 'days' }),
  s('snapshots-keep-routine', 'int', 'Routine snapshots kept per workflow (newest first)', { default: 3, arg: 'n' }),
  s('snapshots-recovery-days', 'int', 'Days a recovery snapshot is kept', { default: 7, arg: 'days' }),
  s('delete-idle-after-days', 'int', 'Delete workflows without edits for this many days (unset: never)', { min: 1, arg: 'days' }),
  s('sweep-interval-ms', 'int', 'How often retention and idle deletion run', { default: 3_600_000, min: 1, arg: 'ms' }),
  s('idle-timeout-ms', 'int', 'Agent lifecycle: an agent idle this long times out', { default: 300_000, min: 1, arg: 'ms' }),
  s('processing-timeout-ms', 'int', 'Agent lifecycle: an agent processing this long times out', { default: 1_800_000, min: 1, arg: 'ms' }),
  s('error-timeout-ms', 'int', 'Agent lifecycle: an agent in error this long times out', { default: 60_000, min: 1, arg: 'ms' }),
  s('deadline-check-ms', 'int', 'How often lifecycle timeouts and task leases are checked', { default: 1000, min: 1, arg: 'ms' }),
  s('reconcile-ms', 'int', 'Cluster: how often each loaded workflow is compared with the store', { default: 1000, min: 1, arg: 'ms' }),
  s('writer-lease-ms', 'int', 'Cluster: how long after a writer died another server takes its workflows over', { default: 5000, min: 1, arg: 'ms' }),
  s('forward-timeout-ms', 'int', 'Cluster: how long a forwarded update waits for the writer before it is sent again', { default: 2000, min: 1, arg: 'ms' })
]

export type SettingValue = string | number | boolean
export type Settings = Record<string, SettingValue | undefined>

const check = (setting: Setting, raw: unknown, from: string): SettingValue => {
  const where = `${from} ${setting.kind === 'boolean' ? '' : 'must be '}`
  if (setting.kind === 'boolean') {
    if (typeof raw === 'boolean') return raw
    if (raw === 'true' || raw === '1') return true
    if (raw === 'false' || raw === '0' || raw === '') return false
    throw new UsageError(`${from} must be true or false, got ${JSON.stringify(raw)}`)
  }
  if (setting.kind === 'list') {
    const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',').map(x => x.trim()) : null
    if (items === null || items.length === 0 || !items.every(x => typeof x === 'string' && x !== '')) {
      throw new UsageError(`${where}one or more non-empty strings, got ${JSON.stringify(raw)}`)
    }
    return (items as string[]).join(',')
  }
  if (setting.kind === 'string') {
    if (typeof raw !== 'string' || raw === '') throw new UsageError(`${where}a non-empty string, got ${JSON.stringify(raw)}`)
    return raw
  }
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : Number.NaN
  const min = setting.min ?? 0
  const max = setting.kind === 'port' ? 65535 : Number.MAX_SAFE_INTEGER
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${where}an integer from ${min} to ${max === 65535 ? max : 'any size'}, got ${JSON.stringify(raw)}`)
  }
  return n
}

const readConfig = async (file: string): Promise<Record<string, unknown>> => {
  let json: unknown
  try {
    json = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new UsageError(`cannot read the config file ${file}: ${(err as Error).message}`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`the config file ${file} must hold a JSON object`)
  const known = new Set(SERVE_SETTINGS.map(x => x.flag))
  for (const key of Object.keys(json)) {
    if (!known.has(key) || key === 'config') throw new UsageError(`unknown setting ${JSON.stringify(key)} in ${file} (keys are the flag names, e.g. "max-workflows")`)
  }
  return json as Record<string, unknown>
}

/** Flag, else environment variable, else config file, else default; each value checked. */
export const resolveSettings = async (flags: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<Settings> => {
  const out: Settings = {}
  const configSetting = SERVE_SETTINGS[0] as Setting
  const configFile = flags.config ?? (env.ACCORD_CONFIG === '' ? undefined : env.ACCORD_CONFIG)
  const file = configFile === undefined ? {} : await readConfig(check(configSetting, configFile, '--config') as string)
  for (const setting of SERVE_SETTINGS) {
    const flag = flags[setting.flag]
    const fromEnv = env[setting.env]
    if (flag !== undefined) out[setting.flag] = check(setting, flag, `--${setting.flag}`)
    else if (fromEnv !== undefined && fromEnv !== '') out[setting.flag] = check(setting, fromEnv, setting.env)
    else if (file[setting.flag] !== undefined) out[setting.flag] = check(setting, file[setting.flag], `"${setting.flag}" in ${String(configFile)}`)
    else out[setting.flag] = setting.default
  }
  return out
}

/** parseArgs options for every setting. */
export const settingFlags = (): Record<string, { type: 'string' | 'boolean', multiple?: boolean }> =>
  Object.fromEntries(SERVE_SETTINGS.map(x => [x.flag, x.kind === 'list' ? { type: 'string', multiple: true } : { type: x.kind === 'boolean' ? 'boolean' : 'string' }]))

/** The usage lines of `accord serve`. */
export const settingsUsage = (): string => SERVE_SETTINGS.map(x => {
  const left = `    --${x.flag}${x.arg === undefined ? '' : ` <${x.arg}>`}`
  const def = x.default === undefined ? '' : ` (default ${String(x.default)})`
  return `${left.padEnd(42)} ${x.help}${def}; env ${x.env}`
}).join('\n')
