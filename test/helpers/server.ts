import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { waitFor } from './wait.ts'
import { createServer, type AccordServer } from '../../server/server.ts'
import type { ServerOptions } from '../../server/options.ts'

export interface TestServer {
  server: AccordServer
  url: string
  port: number
  dataDir: string
  /** Log lines (parsed JSON) the server wrote. */
  logs: Array<Record<string, unknown>>
  /** Stops the server (keeps the data dir). */
  stop: () => Promise<void>
}

const dirs: string[] = []

export const tempDir = async (prefix = 'accord-test-'): Promise<string> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

export const removeTempDirs = async (): Promise<void> => {
  await Promise.all(dirs.splice(0).map(d => rm(d, { recursive: true, force: true })))
}

/** Starts a real server on 127.0.0.1 with an ephemeral port and a LevelDB in a temp dir. */
export const startServer = async (options: ServerOptions & { dataDir?: string } = {}): Promise<TestServer> => {
  const dataDir = options.dataDir ?? await tempDir()
  const logs: Array<Record<string, unknown>> = []
  const server = createServer({
    evictionGraceMs: 0,
    ...options,
    port: options.port ?? 0,
    host: '127.0.0.1',
    dataDir,
    log: { level: 'debug', write: line => { logs.push(JSON.parse(line)) } }
  })
  const { url, port } = await server.listen()
  return { server, url, port, dataDir, logs, stop: () => server.close() }
}

/** Resolves true when nothing listens on the port (binds it briefly to find out). */
export const portIsFree = (port: number): Promise<boolean> => new Promise(resolve => {
  const probe = net.createServer()
  probe.once('error', () => { resolve(false) })
  probe.listen(port, '127.0.0.1', () => { probe.close(() => { resolve(true) }) })
})

/** A new server on a stopped server's port and data dir; waits (bounded) until the port is free. */
export const restartOnSamePort = async (old: TestServer, options: ServerOptions = {}): Promise<TestServer> => {
  await waitFor(() => portIsFree(old.port), { timeoutMs: 10_000, intervalMs: 50, what: `port ${old.port} free again` })
  return startServer({ ...options, port: old.port, dataDir: old.dataDir })
}
