/**
 * Encryption at rest: with a key every stored value is AES-256-GCM encrypted (no plaintext on
 * disk), the same key serves the same state, a missing or wrong key is a clear startup error,
 * verify checks an encrypted store, and `accord rekey` rotates the key (or removes it).
 */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Level } from 'level'
import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { tempDir } from './helpers/server.ts'
import { waitFor } from './helpers/wait.ts'
import { runAccord } from './helpers/child.ts'
import { createServer } from '../server/server.ts'

const { start } = useServers()
const SECRET = 'TOP-SECRET-VALUE-4711'

const rawValues = async (dir: string): Promise<Array<[string, Uint8Array]>> => {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  const out: Array<[string, Uint8Array]> = []
  for await (const entry of db.iterator()) out.push(entry)
  await db.close()
  return out
}

const listenFails = async (dataDir: string, encryptionKey?: Uint8Array): Promise<string> => {
  const server = createServer({ port: 0, dataDir, encryptionKey, log: { level: 'silent' } })
  try {
    await server.listen()
  } catch (err) {
    return (err as Error).message
  }
  await server.close()
  return 'started'
}

describe('encryption at rest', () => {
  it('stores no plaintext, serves with the key, and refuses a missing or wrong key', async () => {
    const key = new Uint8Array(randomBytes(32))
    const first = await start({ encryptionKey: key, keyframeEvery: 2 })
    const agent = sdkAgent(first.url, 'wf-secret', 'writer')
    await agent.whenSynced()
    for (let i = 1; i <= 4; i++) {
      agent.update(d => { d[`k${i}`] = `${SECRET}-${i}` })
      await waitFor(async () => (await first.server.store.getMeta('wf-secret'))?.head === i, { what: `version ${i}` })
    }
    await first.server.createSnapshot('wf-secret', { name: 'snap', kind: 'manual' })
    await agent.close()
    await first.stop()

    const values = await rawValues(first.dataDir)
    expect(values.length).toBeGreaterThan(8)
    for (const [k, v] of values) {
      expect(v[0], k).toBe(2)
      expect(Buffer.from(v).includes(SECRET), k).toBe(false)
    }

    expect(await listenFails(first.dataDir)).toMatch(/is encrypted: configure its key/)
    expect(await listenFails(first.dataDir, new Uint8Array(randomBytes(32)))).toMatch(/does not open the store/)

    const again = await start({ dataDir: first.dataDir, encryptionKey: key })
    const reader = sdkAgent(again.url, 'wf-secret', 'reader')
    await reader.whenSynced()
    expect(reader.state).toEqual({ k1: `${SECRET}-1`, k2: `${SECRET}-2`, k3: `${SECRET}-3`, k4: `${SECRET}-4` })
    expect(await again.server.stateAt('wf-secret', 2)).toEqual({ k1: `${SECRET}-1`, k2: `${SECRET}-2` })
  })

  it('verify checks an encrypted store; rekey rotates the key and --decrypt removes it', async () => {
    const dir = await tempDir()
    const keyFile = path.join(await tempDir(), 'old.key')
    const newKeyFile = path.join(path.dirname(keyFile), 'new.key')
    const oldKey = randomBytes(32)
    await writeFile(keyFile, oldKey.toString('base64'))
    await writeFile(newKeyFile, randomBytes(32).toString('hex'))
    const srv = await start({ dataDir: dir, encryptionKey: new Uint8Array(oldKey) })
    const agent = sdkAgent(srv.url, 'wf-rotate', 'writer')
    await agent.whenSynced()
    agent.update(d => { d.a = 1 })
    await waitFor(async () => (await srv.server.store.getMeta('wf-rotate'))?.head === 1, { what: 'stored' })
    agent.update(d => { d.b = SECRET })
    await waitFor(async () => (await srv.server.store.getMeta('wf-rotate'))?.head === 2, { what: 'stored' })
    await agent.close()
    await srv.stop()

    const noKey = await runAccord(['verify', '--data', dir])
    expect(noKey.code).toBe(1)
    expect(noKey.stderr).toMatch(/encrypted: configure its key/)
    const ok = await runAccord(['verify', '--data', dir, '--encryption-key-file', keyFile])
    expect(ok.stdout).toMatch(/checked 1 workflows, 2 versions: no problems/)

    const rotated = await runAccord(['rekey', '--data', dir, '--encryption-key-file', keyFile, '--new-key-file', newKeyFile])
    expect(rotated.stderr).toBe('')
    expect(rotated.stdout).toMatch(/rewrote \d+ records under the new key; verified/)
    expect(rotated.code).toBe(0)
    expect((await runAccord(['verify', '--data', dir, '--encryption-key-file', keyFile])).stderr).toMatch(/does not open the store/)
    expect((await runAccord(['verify', '--data', dir, '--encryption-key-file', newKeyFile])).code).toBe(0)

    const plain = await runAccord(['rekey', '--data', dir, '--encryption-key-file', newKeyFile, '--decrypt'])
    expect(plain.stdout).toMatch(/unencrypted; verified/)
    const reopened = await start({ dataDir: dir })
    expect(await reopened.server.stateAt('wf-rotate', 2)).toEqual({ a: 1, b: SECRET })
    expect((await reopened.server.history('wf-rotate', { limit: 10 })).map(v => v.version)).toEqual([2, 1])
    await reopened.stop()
    expect((await rawValues(dir)).some(([, v]) => Buffer.from(v).includes(SECRET))).toBe(true)
  })
})
