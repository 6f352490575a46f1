/**
 * Structured JSON logs, one object per line. A `write` sink can be injected (tests capture logs).
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export type LogFields = Record<string, unknown>

export interface Logger {
  debug: (msg: string, fields?: LogFields) => void
  info: (msg: string, fields?: LogFields) => void
  warn: (msg: string, fields?: LogFields) => void
  error: (msg: string, fields?: LogFields) => void
}

export interface LoggerOptions {
  level?: LogLevel
  write?: (line: string) => void
}

export const createLogger = ({ level = 'info', write = line => process.stderr.write(line + '\n') }: LoggerOptions = {}): Logger => {
  const min = LOG_LEVELS.indexOf(level)
  const at = (lvl: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(lvl) < min) return
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }))
  }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** A given logger as it is, or the built-in one made from options (createServer's `log`). */
export const loggerOf = (log: Logger | LoggerOptions | undefined): Logger =>
  typeof (log as Logger | undefined)?.info === 'function' ? log as Logger : createLogger(log as LoggerOptions | undefined)
