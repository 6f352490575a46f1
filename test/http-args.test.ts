/**
 * What a curl user gets for wrong arguments on every HTTP route (a 400 naming the argument and
 * its range), for If-Match, for creating an empty workflow, and SSE authenticated by ?token=.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { api, openSse } from './helpers/http.ts'
import WebSocket from 'ws'
import { mintToken } from '../server/http/auth.ts'
import type { TestServer } from './helpers/server.ts'

const { start } = useServers()
const streams: Array<{ close: () => void }> = []
afterEach(() => { for (const s of streams.splice(0)) s.close() })

const base = (srv: TestServer): string => `http://127.0.0.1:${srv.port}`
const JP = { 'content-type': 'application/json-patch+json' }

/** A workflow at version 2 ({ n: 2 }). */
const twoVersions = async (b: string, wid: string): Promise<void> => {
  expect((await api(b, 'POST', '/v1/workflows', { body: { workflowId: wid, state: { n: 1 } } })).status).toBe(201)
  const patched = await api(b, 'PATCH', `/v1/workflows/${wid}`, { raw: '[{"op":"replace","path":"/n","value":2}]', headers: JP })
  expect(patched.body.version).toBe(2)
}

const expect400 = (reply: { status: number, body: any }, parameter: string, range: RegExp): void => {
  expect(reply.status, JSON.stringify(reply.body)).toBe(400)
  expect(reply.body.error.code).toBe('INVALID_REQUEST')
  expect(reply.body.error.message).toContain(parameter)
  expect(reply.body.error.message).toMatch(range)
  expect(reply.body.error.message).not.toMatch(/NaN/)
  expect(reply.body.error.details).toMatchObject({ parameter })
}

describe('HTTP arguments', () => {
  it('query parameters past the head or not integers get a 400 naming the parameter and the range', async () => {
    const srv = await start()
    const b = base(srv)
    await twoVersions(b, 'wf-q')
    const range = /from 0 to 2 \(the head version\)/
    expect400(await api(b, 'GET', '/v1/workflows/wf-q?version=3'), '?version', range)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q?version=abc'), '?version', range)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q?version=-1'), '?version', range)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q?version=1.5'), '?version', range)
    expect((await api(b, 'GET', '/v1/workflows/wf-q?version=2')).body).toMatchObject({ version: 2, state: { n: 2 } })

    expect400(await api(b, 'GET', '/v1/workflows/wf-q/history?limit=abc'), '?limit', /from 1 to 1000/)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q/history?limit=0'), '?limit', /from 1 to 1000/)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q/history?limit=5000'), '?limit', /from 1 to 1000/)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q/history?before=9'), '?before', /from 1 to 3/)
    expect((await api(b, 'GET', '/v1/workflows/wf-q/history?limit=1&before=3')).body).toMatchObject([{ version: 2 }])

    expect400(await api(b, 'GET', '/v1/workflows/wf-q/diff?from=0&to=7'), '?to', range)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q/diff?to=1'), '?from', range)
    expect((await api(b, 'GET', '/v1/workflows/wf-q/diff?from=1&to=2')).body).toEqual([{ op: 'replace', path: '/n', value: 2 }])

    const sse = openSse(`${b}/v1/workflows/wf-q/events?after=5`)
    streams.push(sse)
    expect(await sse.status).toBe(400)
    const bad = openSse(`${b}/v1/workflows/wf-q/events?after=abc`)
    streams.push(bad)
    expect(await bad.status).toBe(400)
    const badId = openSse(`${b}/v1/workflows/wf-q/events`, { 'last-event-id': '99' })
    streams.push(badId)
    expect(await badId.status).toBe(400)
    const badPath = openSse(`${b}/v1/workflows/wf-q/events?path=tasks`)
    streams.push(badPath)
    expect(await badPath.status).toBe(400)
    // The message itself, over plain fetch (the SSE helper only reports the status).
    expect400(await api(b, 'GET', '/v1/workflows/wf-q/events?after=5'), '?after', range)
    expect400(await api(b, 'GET', '/v1/workflows/wf-q/events', { headers: { 'last-event-id': 'x' } }), 'Last-Event-ID', range)
  })

  it('body versions past the head get the same 400 (snapshots, restore, fork), and nothing is written', async () => {
    const srv = await start()
    const b = base(srv)
    await twoVersions(b, 'wf-b')
    const range = /from 0 to 2 \(the head version\)/
    expect400(await api(b, 'POST', '/v1/workflows/wf-b/snapshots', { body: { name: 's', version: 3 } }), 'version', range)
    expect400(await api(b, 'POST', '/v1/workflows/wf-b/restore', { body: { version: 9 } }), 'version', range)
    expect400(await api(b, 'POST', '/v1/workflows/wf-b/restore', { body: { version: 'one' } }), 'version', range)
    expect400(await api(b, 'POST', '/v1/workflows/wf-b/fork', { body: { version: 3 } }), 'version', range)
    expect((await api(b, 'GET', '/v1/workflows/wf-b/snapshots')).body).toEqual([])
    expect((await api(b, 'GET', '/v1/workflows')).body.map((w: { workflowId: string }) => w.workflowId)).toEqual(['wf-b'])
    expect((await api(b, 'GET', '/v1/workflows/wf-b')).body).toMatchObject({ version: 2, state: { n: 2 } })
    expect((await api(b, 'POST', '/v1/workflows/wf-b/restore', { body: { version: 1 } })).body).toMatchObject({ version: 3 })
  })

  it('an unquoted If-Match is a malformed header (400), a stale one a moved version (412); both say what was expected', async () => {
    const srv = await start()
    const b = base(srv)
    await twoVersions(b, 'wf-m')
    const op = '[{"op":"replace","path":"/n","value":3}]'
    const unquoted = await api(b, 'PATCH', '/v1/workflows/wf-m', { raw: op, headers: { ...JP, 'if-match': '2' } })
    expect(unquoted.status).toBe(400)
    expect(unquoted.body.error).toMatchObject({ code: 'INVALID_REQUEST' })
    expect(unquoted.body.error.message).toMatch(/If-Match must be \* or a quoted version such as "3".*got 2/)
    const stale = await api(b, 'PATCH', '/v1/workflows/wf-m', { raw: op, headers: { ...JP, 'if-match': '"1"' } })
    expect(stale.status).toBe(412)
    expect(stale.body.error.message).toBe('version moved: If-Match expected the current version "2", got "1"')
    expect((await api(b, 'GET', '/v1/workflows/wf-m')).body).toMatchObject({ version: 2, state: { n: 2 } })
    const weak = await api(b, 'PATCH', '/v1/workflows/wf-m', { raw: op, headers: { ...JP, 'if-match': 'W/"2"' } })
    expect(weak).toMatchObject({ status: 200, body: { version: 3, state: { n: 3 } } })
    const listed = await api(b, 'PATCH', '/v1/workflows/wf-m', { raw: '[{"op":"replace","path":"/n","value":4}]', headers: { ...JP, 'if-match': '"1", "3"' } })
    expect(listed).toMatchObject({ status: 200, body: { version: 4 } })
  })

  it('a workflow created with an empty state is listed (and survives a restart)', async () => {
    const srv = await start()
    const b = base(srv)
    const created = await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-empty', state: {} } })
    expect(created).toMatchObject({ status: 201, body: { workflowId: 'wf-empty', version: 0, state: {} } })
    const bare = await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-bare' } })
    expect(bare.status).toBe(201)
    const ids = (): Promise<string[]> => api(b, 'GET', '/v1/workflows').then(r => r.body.map((w: { workflowId: string }) => w.workflowId).sort())
    expect(await ids()).toEqual(['wf-bare', 'wf-empty'])
    await waitFor(() => srv.server.loadedWorkflows().length === 0, { what: 'workflows evicted' })
    expect(await ids()).toEqual(['wf-bare', 'wf-empty'])
    expect((await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-empty' } })).status).toBe(409)
    expect((await api(b, 'GET', '/v1/workflows/wf-empty')).body).toMatchObject({ version: 0, state: {} })
    // The first real write still becomes version 1.
    const patched = await api(b, 'PATCH', '/v1/workflows/wf-empty', { raw: '[{"op":"add","path":"/a","value":1}]', headers: JP })
    expect(patched.body).toMatchObject({ version: 1, state: { a: 1 } })
  })
})

describe('SSE with auth', () => {
  it('a browser-style EventSource authenticates with ?token= (no headers); the token is not logged', async () => {
    const secret = 'sse-secret-for-tests'
    const srv = await start({ auth: { secret } })
    const b = base(srv)
    const admin = await mintToken({ secret, agentId: 'admin', scopes: ['admin:*'] })
    const reader = await mintToken({ secret, agentId: 'reader', scopes: ['read:wf-t'] })
    const other = await mintToken({ secret, agentId: 'other', scopes: ['read:elsewhere'] })
    await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-t', state: { n: 0 } }, headers: { authorization: `Bearer ${admin}` } })

    const denied = openSse(`${b}/v1/workflows/wf-t/events`)
    streams.push(denied)
    expect(await denied.status).toBe(401)
    const forbidden = openSse(`${b}/v1/workflows/wf-t/events?token=${other}`)
    streams.push(forbidden)
    expect(await forbidden.status).toBe(403)
    const garbage = openSse(`${b}/v1/workflows/wf-t/events?token=not-a-jwt`)
    streams.push(garbage)
    expect(await garbage.status).toBe(401)

    const live = openSse(`${b}/v1/workflows/wf-t/events?token=${reader}`)
    streams.push(live)
    expect(await live.status).toBe(200)
    const writer = sdkAgent(srv.url, 'wf-t', 'admin', { token: admin })
    await writer.whenSynced()
    writer.update(d => { d.n = 1 })
    await waitFor(() => live.events.length === 1, { what: 'the change over SSE' })
    expect(JSON.parse(live.events[0]!.data)).toMatchObject({ author: 'admin', changes: [{ op: 'replace', path: '/n', value: 1 }] })

    // Only the stream takes it: the other routes still want the Authorization header.
    expect((await api(b, 'GET', `/v1/workflows/wf-t?token=${reader}`)).status).toBe(401)
    // A WebSocket with a bad id and a token in its URL: the log line shows no token.
    const ws = new WebSocket(`${srv.url}/bad%20id?token=${reader}`)
    await new Promise(resolve => { ws.on('close', resolve) })
    await waitFor(() => srv.logs.some(l => l.reason === 'invalid workflow id'), { what: 'the rejection logged' })
    const text = JSON.stringify(srv.logs)
    expect(text).not.toContain(reader)
    expect(text).not.toContain(other)
    expect(text).toContain('token=[redacted]')
  })
})
