/**
 * createServer's lifecycle as embedders rely on it: nothing works before listen() (a typed
 * ClosedError), close() is idempotent and releases the port and the store, also when listen()
 * failed midway or close() came while listen() was still starting.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { createServer } from '../server/server.ts'
import { openLevelStore } from '../src/store/level.ts'
import { portIsFree, removeTempDirs, tempDir } from './helpers/server.ts'

const silent = { level: 'silent' as const }

afterAll(removeTempDirs)

/** The LevelDB lock is free again: the server closed its store. */
const storeReleased = async (dir: string): Promise<boolean> => {
  const store = await openLevelStore(dir)
  await store.close()
  return true
}

describe('server lifecycle', () => {
  it('refuses the module API before listen() with a ClosedError', async () => {
    const server = createServer({ port: 0, dataDir: await tempDir(), log: silent })
    expect(() => server.history('wf')).toThrow(expect.objectContaining({ code: 'CLOSED', message: expect.stringMatching(/call listen\(\) first/) }))
    expect(() => server.store).toThrow(expect.objectContaining({ code: 'CLOSED' }))
    expect(server.loadedWorkflows()).toEqual([])
    expect(server.connectionCount()).toBe(0)
    await server.close()
    await expect(server.listen()).rejects.toMatchObject({ code: 'CLOSED' })
  })

  it('close() is idempotent and frees the port and the store', async () => {
    const dataDir = await tempDir()
    const server = createServer({ port: 0, dataDir, log: silent })
    const { port } = await server.listen()
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
    const first = server.close()
    const second = server.close()
    await Promise.all([first, second])
    await server.close()
    expect(await portIsFree(port)).toBe(true)
    expect(await storeReleased(dataDir)).toBe(true)
  })

  it('a listen() that fails midway releases what it had opened', async () => {
    const holder = createServer({ port: 0, dataDir: await tempDir(), log: silent })
    const { port } = await holder.listen()
    const dataDir = await tempDir()
    const second = createServer({ port, dataDir, log: silent })
    await expect(second.listen()).rejects.toMatchObject({ code: 'EADDRINUSE' })
    expect(await storeReleased(dataDir)).toBe(true)
    await second.close()
    await holder.close()
  })

  it('a close() while listen() is starting waits for it, then releases everything', async () => {
    const dataDir = await tempDir()
    const server = createServer({ port: 0, dataDir, log: silent })
    const listening = server.listen()
    await server.close()
    const { port } = await listening
    expect(await portIsFree(port)).toBe(true)
    expect(await storeReleased(dataDir)).toBe(true)
  })
})
