/**
 * Bench-only Accord server process that answers heap queries over IPC (run with --expose-gc by
 * bench/servers.ts). Production servers have no such endpoint. Argument: JSON
 * `{ dataDir, memory?, evictionGraceMs?, serverOptions? }` (serverOptions: more createServer options,
 * for experiments).
 */
import { writeHeapSnapshot } from 'node:v8'
import { createServer } from '../server/server.ts'
import type { ServerOptions } from '../server/options.ts'
import { createMemoryStore } from '../src/store/memory.ts'
import { serveRpc, settledHeap } from './ipc.ts'

const options = JSON.parse(process.argv[2] ?? '{}') as { dataDir: string, memory?: boolean, evictionGraceMs?: number, serverOptions?: ServerOptions }
const server = createServer({
  ...options.serverOptions,
  port: 0,
  dataDir: options.dataDir,
  store: options.memory === true ? createMemoryStore() : undefined,
  evictionGraceMs: options.evictionGraceMs,
  log: { level: 'warn' }
})
const { url, port } = await server.listen()

const stop = async (): Promise<void> => {
  await server.close()
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })

serveRpc({
  heap: () => settledHeap(),
  snapshot: async (file: string) => {
    await settledHeap()
    return writeHeapSnapshot(file)
  },
  loaded: () => server.loadedWorkflows().length
}, { url, port })
