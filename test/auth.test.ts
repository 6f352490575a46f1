import { describe, expect, it } from 'vitest'
import { SignJWT } from 'jose'
import { useServers, headOf } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { api, openSse } from './helpers/http.ts'
import { mintToken, pathMatches } from '../server/http/auth.ts'
import { createServer } from '../server/server.ts'

const { start } = useServers()
const secret = 'test-secret-please-change'
const auth = { secret }
const token = (agentId: string, scopes: string[], expiresIn = '1h'): Promise<string> => mintToken({ secret, agentId, scopes, expiresIn })
const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })

/** Connects a stock-protocol client with a token and reports how the server closed it, if it did. */
const closeOf = (client: ReturnType<typeof stockClient>): Promise<{ code: number, reason: string }> =>
  new Promise(resolve => { client.provider.on('connection-close', (e: any) => { if (e !== null) resolve({ code: e.code, reason: e.reason }) }) })

describe('auth', () => {
  it('denies HTTP requests that are missing, expired, tampered, cross-workflow or under-scoped', async () => {
    const srv = await start({ auth })
    const b = `http://127.0.0.1:${srv.port}`
    const admin = await token('admin', ['admin:*'])
    await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-a', state: { v: 1 } }, headers: bearer(admin) })
    await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-b', state: { v: 2 } }, headers: bearer(admin) })

    const missing = await api(b, 'GET', '/v1/workflows/wf-a')
    expect(missing).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHORIZED', message: 'a token is required' } } })
    const expired = await new SignJWT({ scopes: ['read:*'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('late')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200).setExpirationTime(Math.floor(Date.now() / 1000) - 3600).sign(new TextEncoder().encode(secret))
    expect((await api(b, 'GET', '/v1/workflows/wf-a', { headers: bearer(expired) })).body.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'token expired' })
    const good = await token('reader-a', ['read:wf-a'])
    const tampered = good.slice(0, -3) + (good.endsWith('AAA') ? 'BBB' : 'AAA')
    expect((await api(b, 'GET', '/v1/workflows/wf-a', { headers: bearer(tampered) })).status).toBe(401)
    const otherSecret = await mintToken({ secret: 'not-the-secret', agentId: 'x', scopes: ['admin:*'] })
    expect((await api(b, 'GET', '/v1/workflows/wf-a', { headers: bearer(otherSecret) })).status).toBe(401)

    expect((await api(b, 'GET', '/v1/workflows/wf-a', { headers: bearer(good) })).body.state).toEqual({ v: 1 })
    expect((await api(b, 'GET', '/v1/workflows/wf-b', { headers: bearer(good) })).body.error.code).toBe('FORBIDDEN')
    expect((await api(b, 'GET', '/v1/workflows', { headers: bearer(good) })).body.map((w: any) => w.workflowId)).toEqual(['wf-a'])
    const readOnlyPatch = await api(b, 'PATCH', '/v1/workflows/wf-a', { raw: '[{"op":"add","path":"/x","value":1}]', headers: { ...bearer(good), 'content-type': 'application/json-patch+json' } })
    expect(readOnlyPatch.status).toBe(403)
    const writer = await token('writer-a', ['write:wf-*'])
    expect((await api(b, 'DELETE', '/v1/workflows/wf-a', { headers: bearer(writer) })).status).toBe(403)
    expect((await api(b, 'GET', '/metrics')).status).toBe(401)
    expect((await api(b, 'GET', '/metrics', { headers: bearer(good) })).status).toBe(200)
    expect((await openSse(`${b}/v1/workflows/wf-b/events`, bearer(good)).status)).toBe(403)
    expect((await openSse(`${b}/v1/workflows/wf-a/events`).status)).toBe(401)

    // The author comes from the token, never from what the client claims.
    await api(b, 'PATCH', '/v1/workflows/wf-a', { raw: '[{"op":"add","path":"/x","value":1}]', headers: { ...bearer(writer), 'content-type': 'application/json-patch+json', 'x-accord-agent': 'someone-else' } })
    expect((await api(b, 'GET', '/v1/workflows/wf-a/history?limit=1', { headers: bearer(good) })).body[0].author).toBe('writer-a')
  })

  it('closes WebSockets with 4401 for missing, expired or tampered tokens and 4403 for another workflow', async () => {
    const srv = await start({ auth })
    const cases: Array<[string, string | undefined, string, number, RegExp]> = [
      ['missing', undefined, 'wf-a', 4401, /token is required/],
      ['tampered', (await token('a', ['read:*'])).slice(0, -2) + 'xx', 'wf-a', 4401, /signature|rejected/],
      ['other workflow', await token('a', ['write:wf-a']), 'wf-b', 4403, /no read access to wf-b/]
    ]
    for (const [what, t, id, code, reason] of cases) {
      const client = stockClient(srv.url, id, t === undefined ? {} : { token: t })
      const closed = await closeOf(client)
      expect(closed.code, what).toBe(code)
      expect(closed.reason, what).toMatch(reason)
      client.close()
    }
    const expired = await token('a', ['read:*'], '1s')
    await waitFor(() => Date.now() / 1000 > JSON.parse(Buffer.from(expired.split('.')[1]!, 'base64url').toString()).exp + 1, { timeoutMs: 5000, intervalMs: 100 })
    const late = stockClient(srv.url, 'wf-a', { token: expired })
    expect(await closeOf(late)).toMatchObject({ code: 4401, reason: expect.stringMatching(/expired/) })
  })

  it('a read-only token syncs but its Yjs updates are refused and not persisted; authors come from tokens', async () => {
    const srv = await start({ auth })
    const writer = sdkAgent(srv.url, 'wf-ro', 'claims-to-be-bob', { token: await token('writer-1', ['write:wf-ro']) })
    await writer.whenSynced()
    writer.update(d => { d.v = 1 })
    await waitFor(async () => (await headOf(srv, 'wf-ro')) === 1)
    expect((await srv.server.history('wf-ro'))[0]?.author).toBe('writer-1')

    const reader = stockClient(srv.url, 'wf-ro', { token: await token('reader-1', ['read:wf-ro']) })
    await reader.synced()
    expect(reader.json()).toEqual({ v: 1 })
    const closed = closeOf(reader)
    reader.doc.getMap('state').set('v', 666)
    expect(await closed).toMatchObject({ code: 4403, reason: expect.stringMatching(/read-only/) })
    reader.close()
    writer.update(d => { d.after = true })
    await waitFor(async () => (await headOf(srv, 'wf-ro')) === 2)
    expect(await srv.server.stateAt('wf-ro', 2)).toEqual({ v: 1, after: true })
  })

  it('a path-scoped token: writes outside its paths are reverted on every peer and recorded as violations', async () => {
    const srv = await start({ auth })
    const owner = sdkAgent(srv.url, 'wf-scope', 'owner', { token: await token('owner', ['write:wf-scope']) })
    const scoped = stockClient(srv.url, 'wf-scope', { token: await token('tasker', ['write:wf-scope:/tasks/**']) })
    await Promise.all([owner.whenSynced(), scoped.synced()])
    owner.update(d => { d.tasks = []; d.config = { mode: 'safe' } })
    await waitForConvergence([() => owner.state, scoped.json])

    const tasks = scoped.doc.getMap('state').get('tasks') as any
    tasks.push(['from the tasker'])
    await waitFor(() => (owner.state.tasks as string[]).length === 1, { what: 'allowed write arrives' })
    ;(scoped.doc.getMap('state').get('config') as any).set('mode', 'yolo')
    const [violation] = await waitFor(async () => { const v = await srv.server.violations('wf-scope'); return v.length > 0 ? v : null })
    expect(violation).toMatchObject({ kind: 'scope', agent: 'tasker', paths: ['/config/mode'], reverted: true })
    const final = await waitForConvergence([() => owner.state, scoped.json])
    expect(final).toEqual({ tasks: ['from the tasker'], config: { mode: 'safe' } })
  })

  it('checks rights on extension requests too: a reader may read history but not restore or delete snapshots', async () => {
    const srv = await start({ auth })
    const writer = sdkAgent(srv.url, 'wf-rpc', 'w', { token: await token('w', ['write:wf-rpc']) })
    await writer.whenSynced()
    writer.update(d => { d.v = 1 })
    await waitFor(async () => (await headOf(srv, 'wf-rpc')) === 1)
    const snap = await writer.createSnapshot({ name: 's' })
    const reader = sdkAgent(srv.url, 'wf-rpc', 'r', { token: await token('r', ['read:wf-rpc']) })
    await reader.whenSynced()
    expect((await reader.history()).map(v => v.version)).toEqual([1])
    await expect(reader.restore({ version: 1 })).rejects.toMatchObject({ code: 'FORBIDDEN' })
    await expect(writer.deleteSnapshot(snap.id)).rejects.toMatchObject({ code: 'FORBIDDEN' })
    await expect(reader.stateAt(1, { workflowId: 'wf-other' })).rejects.toMatchObject({ code: 'FORBIDDEN' })
  })

  it('scope patterns: JSON-pointer wildcards', () => {
    expect(pathMatches('/tasks/**', '/tasks')).toBe(true)
    expect(pathMatches('/tasks/**', '/tasks/3/title')).toBe(true)
    expect(pathMatches('/tasks/*/title', '/tasks/3/title')).toBe(true)
    expect(pathMatches('/tasks/*/title', '/tasks/3/owner')).toBe(false)
    expect(pathMatches('/tasks/**', '/config')).toBe(false)
    expect(pathMatches('/**', '/anything/at/all')).toBe(true)
  })

  it('without auth it refuses to listen beyond loopback, and says it listens on loopback only', async () => {
    const server = createServer({ host: '0.0.0.0', port: 0, log: { level: 'silent' } })
    await expect(server.listen()).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(/without auth/) })
    const srv = await start()
    expect(srv.logs.some(l => l.level === 'warn' && String(l.msg).includes('no auth configured'))).toBe(true)
  })
})
