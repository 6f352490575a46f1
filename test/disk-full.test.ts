/**
 * A real full disk: the data dir is a small tmpfs (needs root to mount; otherwise skipped with the
 * reason printed, and the injected-fault suite in storage-faults.test.ts still covers the path).
 * When writes fail for good the workflow stops with 4500, nothing unstored reaches another peer,
 * and once there is space again the writer's reconnect brings every edit in.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'

const { start } = useServers()

const canMount = (): string | null => {
  if (process.getuid?.() !== 0) return 'not running as root (mounting a tmpfs needs it)'
  const probe = path.join(os.tmpdir(), `accord-mount-probe-${process.pid}`)
  try {
    execFileSync('mkdir', ['-p', probe])
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' })
    execFileSync('umount', [probe], { stdio: 'ignore' })
    return null
  } catch {
    return 'cannot mount a tmpfs here'
  } finally {
    execFileSync('rm', ['-rf', probe])
  }
}
const cannot = canMount()
if (cannot !== null) console.log(`disk-full test skipped: ${cannot}`)

describe.skipIf(cannot !== null)('full disk', () => {
  it('stops the workflow without acknowledging unstored edits, and recovers when space returns', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'accord-full-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dir])
    try {
      const srv = await start({ dataDir: path.join(dir, 'data'), writeAttempts: 3 })
      const writer = sdkAgent(srv.url, 'wf-full', 'writer', { recovery: { baseMs: 50, capMs: 300 } })
      const observer = stockClient(srv.url, 'wf-full')
      await Promise.all([writer.whenSynced(), observer.synced()])
      const big = (i: number): string => `${i}:${'x'.repeat(100_000)}`
      const N = 60
      for (let i = 0; i < N; i++) {
        writer.update(d => { d[`k${i}`] = big(i) })
        await new Promise(resolve => setImmediate(resolve))
      }
      await waitFor(() => srv.logs.some(l => l.msg === 'workflow stopped: storage write failed'), { what: 'the workflow stops on the full disk', timeoutMs: 30_000 })
      expect(srv.logs.find(l => l.msg === 'workflow stopped: storage write failed')?.error).toMatch(/No space left on device/)

      // Whatever the observer was sent is stored.
      const seen = Object.keys(observer.json() as Record<string, unknown>)
      expect(seen.length).toBeLessThan(N)
      const meta = await srv.server.store.getMeta('wf-full')
      const stored = meta === null ? {} : await srv.server.stateAt('wf-full', meta.head)
      for (const key of seen) expect(stored, key).toHaveProperty(key)

      // Space again: the writer's reconnect (4500 is retried) brings every edit in.
      execFileSync('mount', ['-o', 'remount,size=64m', dir])
      await waitFor(async () => {
        const m = await srv.server.store.getMeta('wf-full')
        return m !== null && Object.keys(await srv.server.stateAt('wf-full', m.head)).length === N
      }, { what: 'every edit stored after the disk has space', timeoutMs: 60_000 })
      await waitFor(() => Object.keys(observer.json() as Record<string, unknown>).length === N, { what: 'the observer has every edit', timeoutMs: 30_000 })
      expect((observer.json() as Record<string, string>).k59).toBe(big(59))
      await srv.stop()
    } finally {
      try { execFileSync('umount', [dir]) } catch {}
      await rm(dir, { recursive: true, force: true })
    }
  })
})
