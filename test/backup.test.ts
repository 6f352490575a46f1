/**
 * Backups: `accord backup` copies a running server's store while agents keep writing, and
 * `accord restore-backup` brings it back, verified; the restored store serves the same state and
 * history as the original at the backup's point in time. Damaged backups are refused.
 */
import { readFile, writeFile, mkdir, readdir, rm, stat } from 'node:fs/promises'
import { gunzipSync, gzipSync } from 'node:zlib'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { tempDir } from './helpers/server.ts'
import { waitFor } from './helpers/wait.ts'
import { runAccord } from './helpers/child.ts'
import { api } from './helpers/http.ts'
import { historyOf } from './helpers/history.ts'
import { mintToken } from '../server/http/auth.ts'

const { start } = useServers()
const WORKFLOWS = ['bk-a', 'bk-b', 'bk-c']

describe('backups', () => {
  it('backs up a server under writes and restores the same state and history', async () => {
    const srv = await start({ keyframeEvery: 10 })
    const agents = WORKFLOWS.map(id => sdkAgent(srv.url, id, `writer-${id}`))
    await Promise.all(agents.map(a => a.whenSynced()))
    let n = 0
    const storm = setInterval(() => {
      n++
      agents.forEach(a => a.update(d => { d[`k${n % 40}`] = { n, list: [n, n + 1] } }, { description: `write ${n}` }))
    }, 3)
    try {
      await waitFor(async () => (await srv.server.store.getMeta('bk-c'))?.head !== undefined && ((await srv.server.store.getMeta('bk-c'))?.head ?? 0) > 30, { what: 'some history' })
      await srv.server.createSnapshot('bk-a', { name: 'before backup', kind: 'manual' })
      const dir = path.join(await tempDir(), 'backup')
      const run = await runAccord(['backup', dir, '--server', `http://127.0.0.1:${srv.port}`])
      expect(run.stderr).toBe('')
      expect(run.code).toBe(0)
      expect(run.stdout).toMatch(/backed up 3 workflows/)
      // Writes went on during the backup: the copy is one point in time, not the end state.
      const heads = await Promise.all(WORKFLOWS.map(async id => (await srv.server.store.getMeta(id))!.head))
      await waitFor(async () => ((await srv.server.store.getMeta('bk-a'))?.head ?? 0) > heads[0]!, { what: 'writes continue after the backup' })

      const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'))
      expect(manifest.format).toBe('accord-backup/1')
      expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/)
      const target = path.join(await tempDir(), 'restored')
      const restored = await runAccord(['restore-backup', dir, '--data', target])
      expect(restored.stdout).toMatch(/restored 3 workflows, \d+ versions .* verified/)
      expect(restored.code).toBe(0)

      const copy = await start({ dataDir: target })
      for (const { id, head } of manifest.workflows as Array<{ id: string, head: number }>) {
        expect(head).toBeGreaterThan(0)
        expect((await copy.server.store.getMeta(id))?.head).toBe(head)
        const original = (await historyOf(srv.server, id)).filter(v => v.version <= head)
        expect(await historyOf(copy.server, id)).toEqual(original)
        expect(await copy.server.stateAt(id, head)).toEqual(await srv.server.stateAt(id, head))
        const reader = sdkAgent(copy.url, id, 'reader')
        await reader.whenSynced()
        expect(reader.state).toEqual(await srv.server.stateAt(id, head))
      }
      expect((await copy.server.listSnapshots('bk-a')).map(s => s.name)).toContain('before backup')
    } finally {
      clearInterval(storm)
    }
  })

  it('refuses a damaged backup and leaves the target untouched', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'bk-damaged', 'writer')
    a.update(d => { d.value = 'x'.repeat(2000) })
    await waitFor(async () => ((await srv.server.store.getMeta('bk-damaged'))?.head ?? 0) === 1)
    const dir = path.join(await tempDir(), 'backup')
    expect((await runAccord(['backup', dir, '--server', srv.url])).code).toBe(0)

    // One flipped bit inside the records (recompressed, so only the checksum can catch it).
    const file = path.join(dir, 'records.bin.gz')
    const bytes = gunzipSync(await readFile(file))
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01
    await writeFile(file, gzipSync(bytes))
    const target = path.join(await tempDir(), 'restored')
    const run = await runAccord(['restore-backup', dir, '--data', target])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/CORRUPT_DATA: .*sha256/)
    await expect(readdir(target)).rejects.toMatchObject({ code: 'ENOENT' })

    // A non-empty target is never overwritten.
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01
    await writeFile(file, gzipSync(bytes))
    await mkdir(target)
    await writeFile(path.join(target, 'keep.txt'), 'mine')
    const refused = await runAccord(['restore-backup', dir, '--data', target])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/not empty/)
    expect(await readFile(path.join(target, 'keep.txt'), 'utf8')).toBe('mine')
  })

  it('writes gzipped backups smaller than their records, and still restores uncompressed ones', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'bk-size', 'writer')
    for (let i = 0; i < 30; i++) {
      a.update(d => { d[`task${i}`] = { title: `task number ${i}`, status: 'todo', notes: 'the same words again and again' } })
      await waitFor(async () => ((await srv.server.store.getMeta('bk-size'))?.head ?? 0) > i, { what: `version ${i + 1}` })
    }
    const dir = path.join(await tempDir(), 'backup')
    const run = await runAccord(['backup', dir, '--server', srv.url])
    expect(run.code).toBe(0)
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { bytes: number, storedBytes: number, compression: string }
    expect(manifest.compression).toBe('gzip')
    const stored = (await stat(path.join(dir, 'records.bin.gz'))).size
    expect(manifest.storedBytes).toBe(stored)
    expect(stored).toBeLessThan(manifest.bytes / 2)

    // A backup from before compression: plain records.bin, no compression in the manifest.
    await writeFile(path.join(dir, 'records.bin'), gunzipSync(await readFile(path.join(dir, 'records.bin.gz'))))
    await rm(path.join(dir, 'records.bin.gz'))
    const { compression: _c, storedBytes: _s, ...old } = manifest
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(old))
    const target = path.join(await tempDir(), 'restored')
    const restored = await runAccord(['restore-backup', dir, '--data', target])
    expect(restored.stderr).toBe('')
    expect(restored.code).toBe(0)
    expect(restored.stdout).toMatch(/restored 1 workflows, 30 versions .*verified/)
  })

  it('needs the admin right on every workflow when auth is on', async () => {
    const secret = 'backup-test-secret-0123456789abcdef'
    const srv = await start({ auth: { secret } })
    const base = `http://127.0.0.1:${srv.port}`
    expect((await api(base, 'GET', '/v1/admin/backup')).status).toBe(401)
    const writer = await mintToken({ secret, agentId: 'w', scopes: ['write:*'] })
    expect((await api(base, 'GET', '/v1/admin/backup', { headers: { authorization: `Bearer ${writer}` } })).status).toBe(403)
    const admin = await mintToken({ secret, agentId: 'ops', scopes: ['admin:*'] })
    const dir = path.join(await tempDir(), 'backup')
    const run = await runAccord(['backup', dir, '--server', base, '--token', admin])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/backed up 0 workflows/)
  })
})
