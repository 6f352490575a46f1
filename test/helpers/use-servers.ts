import { afterEach } from 'vitest'
import { startServer, removeTempDirs, restartOnSamePort, type TestServer } from './server.ts'
import { closeClients } from './clients.ts'
import { killChildren } from './child.ts'

/**
 * Servers started through this are stopped after each test, together with every client, child
 * process and temp dir the test made.
 */
export const useServers = (): {
  start: typeof startServer
  restart: typeof restartOnSamePort
} => {
  const servers: TestServer[] = []
  afterEach(async () => {
    await killChildren()
    await closeClients()
    await Promise.all(servers.splice(0).map(s => s.stop()))
    await removeTempDirs()
  })
  const track = (s: TestServer): TestServer => {
    servers.push(s)
    return s
  }
  return {
    start: async (...args) => track(await startServer(...args)),
    restart: async (...args) => track(await restartOnSamePort(...args))
  }
}

/** The newest stored version of a workflow (0 when none). */
export const headOf = async (srv: TestServer, id: string): Promise<number> => (await srv.server.store.getMeta(id))?.head ?? 0
