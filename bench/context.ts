/**
 * What every scenario gets from the orchestrator (mode, runs, temp space, profiling), and helpers
 * that always clean up: a fresh data directory, a server child, the load-generator child.
 */
import { mkdtemp } from 'node:fs/promises'
import path from 'node:path'
import { forkRpc } from './ipc.ts'
import { startServer, type BenchServer, type Kind, type StartOptions } from './servers.ts'
import type { Load } from './steps.ts'

export interface Context {
  quick: boolean
  /** Repetitions for medians (3 by default, 1 with --quick). */
  runs: number
  /** Temp directory for this invocation (removed at the end). */
  tmp: string
  /** When set, Accord servers write CPU profiles here. */
  profileDir?: string
  log: (line: string) => void
}

export const freshDir = (ctx: Context, name: string): Promise<string> => mkdtemp(path.join(ctx.tmp, `${name}-`))

export const withServer = async <T>(ctx: Context, kind: Kind, name: string, fn: (server: BenchServer) => Promise<T>, options: Partial<StartOptions> = {}): Promise<T> => {
  const dataDir = options.dataDir ?? await freshDir(ctx, `${name}-${kind}`)
  const server = await startServer(kind, {
    dataDir,
    profileDir: kind === 'reference' ? undefined : ctx.profileDir,
    profileName: `${name}-${kind}-${Date.now()}`,
    ...options
  })
  try {
    return await fn(server)
  } finally {
    await server.stop()
  }
}

export const withLoad = async <T>(fn: (load: Load) => Promise<T>): Promise<T> => {
  const load = await forkRpc<{ pid: number }>(path.join(import.meta.dirname, 'load.ts'), [])
  try {
    return await fn(load)
  } finally {
    await load.call('disconnect', undefined, 30_000).catch(() => {})
    await load.stop(10_000)
  }
}

/** Workflow ids `<prefix>-0` ... */
export const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
