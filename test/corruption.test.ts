/**
 * Corruption detection: a flipped byte or a truncated value is found when the workflow loads;
 * that workflow is refused with a typed error, /readyz and /metrics name it, every other workflow
 * keeps serving, and `accord verify` reports each damaged record.
 */
import { Level } from 'level'
import { describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { runAccord } from './helpers/child.ts'
import { api } from './helpers/http.ts'
import { key } from '../src/store/keys.ts'

const { start } = useServers()

describe('corruption', () => {
  it('refuses damaged workflows, reports them, and keeps serving the rest', async () => {
    const first = await start()
    for (const id of ['wf-flip', 'wf-trunc', 'wf-fine']) {
      const a = sdkAgent(first.url, id, 'writer')
      await a.whenSynced()
      a.update(d => { d.id = id })
      await waitFor(async () => (await first.server.store.getMeta(id))?.head === 1, { what: `${id} version 1 stored` })
      a.update(d => { d.more = [1, 2, 3] })
      await waitFor(async () => (await first.server.store.getMeta(id))?.head === 2, { what: `${id} version 2 stored` })
      await a.close()
    }
    await first.stop()

    const db = new Level<string, Uint8Array>(first.dataDir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    const flipKey = key('wf-flip', 'log', 2)
    const flipped = Uint8Array.from((await db.get(flipKey))!)
    flipped[flipped.length - 3]! ^= 0x10
    await db.put(flipKey, flipped)
    const truncKey = key('wf-trunc', 'log', 1)
    await db.put(truncKey, (await db.get(truncKey))!.subarray(0, 7))
    await db.close()

    const srv = await start({ dataDir: first.dataDir })
    const base = `http://127.0.0.1:${srv.port}`
    const bad = stockClient(srv.url, 'wf-flip')
    const closed = await new Promise<{ code: number, reason: string }>(resolve => {
      bad.provider.on('connection-close', (event: any) => { if (event !== null) resolve({ code: event.code, reason: event.reason }) })
    })
    bad.close()
    expect(closed.code).toBe(4500)
    expect(closed.reason).toMatch(/checksum mismatch/)
    const read = await api(base, 'GET', '/v1/workflows/wf-trunc')
    expect(read.status).toBe(500)
    expect(read.body.error.code).toBe('CORRUPT_DATA')
    expect(read.body.error.message).toContain(truncKey)

    const good = sdkAgent(srv.url, 'wf-fine', 'reader')
    await good.whenSynced()
    expect(good.state).toEqual({ id: 'wf-fine', more: [1, 2, 3] })
    good.update(d => { d.after = true })
    await waitFor(async () => (await srv.server.store.getMeta('wf-fine'))?.head === 3, { what: 'healthy workflow still writes' })

    const ready = await api(base, 'GET', '/readyz')
    expect(ready.status).toBe(200)
    expect(ready.body.degraded).toBe(true)
    expect(ready.body.corruptWorkflows.map((c: { workflowId: string }) => c.workflowId).sort()).toEqual(['wf-flip', 'wf-trunc'])
    const metrics = await (await fetch(`${base}/metrics`)).text()
    expect(metrics).toMatch(/^accord_corrupt_workflows 2$/m)
    expect(metrics).toMatch(/accord_corrupt_workflows_total\{workflow="wf-flip"\} 1/)
    await good.close()
    await srv.stop()

    const verified = await runAccord(['verify', '--data', first.dataDir])
    expect(verified.code).toBe(1)
    expect(verified.stdout).toContain(`${flipKey}: checksum mismatch`)
    expect(verified.stdout).toContain(`${truncKey}:`)
    expect(verified.stdout).not.toMatch(/PROBLEM wf-fine/)
    expect(verified.stdout).toMatch(/checked 3 workflows/)
  })

  it('verify finds nothing wrong in a healthy store and says when the store is in use', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-ok', 'writer')
    await a.whenSynced()
    for (let i = 1; i <= 5; i++) {
      a.update(d => { d[`k${i}`] = i })
      await waitFor(async () => (await srv.server.store.getMeta('wf-ok'))?.head === i, { what: `version ${i} stored` })
    }
    const busy = await runAccord(['verify', '--data', srv.dataDir])
    expect(busy.code).toBe(1)
    expect(busy.stderr).toMatch(/in use/)
    await a.close()
    await srv.stop()
    const ok = await runAccord(['verify', '--data', srv.dataDir])
    expect(ok.stdout).toMatch(/checked 1 workflows, 5 versions: no problems/)
    expect(ok.code).toBe(0)
  })
})
