import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { useServers, headOf } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { waitFor, waitForConvergence } from './helpers/wait.ts'
import { api, openSse } from './helpers/http.ts'
import type { TestServer } from './helpers/server.ts'

const { start } = useServers()
const streams: Array<{ close: () => void }> = []
afterEach(() => { for (const s of streams.splice(0)) s.close() })

const base = (srv: TestServer): string => `http://127.0.0.1:${srv.port}`
const JP = { 'content-type': 'application/json-patch+json' }

describe('HTTP API', () => {
  it('creates, lists, reads (ETag, ?version), patches (If-Match) and deletes workflows', async () => {
    const srv = await start()
    const b = base(srv)
    const created = await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-h', state: { todo: ['a'] } }, headers: { 'x-accord-agent': 'curl-user' } })
    expect(created).toMatchObject({ status: 201, body: { workflowId: 'wf-h', version: 1, state: { todo: ['a'] } } })
    expect((await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-h' } })).status).toBe(409)
    expect((await api(b, 'GET', '/v1/workflows')).body).toMatchObject([{ workflowId: 'wf-h', version: 1 }])

    const read = await api(b, 'GET', '/v1/workflows/wf-h')
    expect(read).toMatchObject({ status: 200, body: { version: 1, state: { todo: ['a'] } } })
    expect(read.headers.get('etag')).toBe('"1"')
    expect((await api(b, 'GET', '/v1/workflows/wf-h', { headers: { 'if-none-match': '"1"' } })).status).toBe(304)

    const patched = await api(b, 'PATCH', '/v1/workflows/wf-h', {
      raw: JSON.stringify([{ op: 'add', path: '/todo/-', value: 'b' }, { op: 'add', path: '/owner', value: 'me' }]),
      headers: { ...JP, 'if-match': '"1"', 'x-accord-agent': 'curl-user', 'x-accord-description': encodeURIComponent('add b & owner'), 'x-accord-run-id': 'run-9' }
    })
    expect(patched).toMatchObject({ status: 200, body: { version: 2, state: { todo: ['a', 'b'], owner: 'me' } } })
    expect(patched.headers.get('etag')).toBe('"2"')
    const stale = await api(b, 'PATCH', '/v1/workflows/wf-h', { raw: '[{"op":"remove","path":"/owner"}]', headers: { ...JP, 'if-match': '"1"' } })
    expect(stale).toMatchObject({ status: 412, body: { error: { code: 'PRECONDITION_FAILED' } } })

    expect((await api(b, 'GET', '/v1/workflows/wf-h?version=1')).body).toMatchObject({ version: 1, state: { todo: ['a'] } })
    const [latest] = (await api(b, 'GET', '/v1/workflows/wf-h/history?limit=1')).body
    expect(latest).toMatchObject({ version: 2, author: 'curl-user', description: 'add b & owner', meta: { runId: 'run-9' } })
    const diff = (await api(b, 'GET', '/v1/workflows/wf-h/diff?from=1&to=2')).body
    expect(diff).toHaveLength(2)
    expect(diff).toEqual(expect.arrayContaining([{ op: 'add', path: '/owner', value: 'me' }, { op: 'add', path: '/todo/1', value: 'b' }]))

    const snap = await api(b, 'POST', '/v1/workflows/wf-h/snapshots', { body: { name: 'v2', kind: 'manual' } })
    expect(snap).toMatchObject({ status: 201, body: { version: 2, name: 'v2' } })
    expect((await api(b, 'GET', '/v1/workflows/wf-h/snapshots')).body).toHaveLength(1)
    expect((await api(b, 'POST', '/v1/workflows/wf-h/restore', { body: { version: 1 } })).body).toMatchObject({ version: 3, description: 'restored from version 1' })
    expect((await api(b, 'GET', '/v1/workflows/wf-h')).body.state).toEqual({ todo: ['a'] })
    expect((await api(b, 'DELETE', `/v1/workflows/wf-h/snapshots/${snap.body.id as string}`)).status).toBe(204)
    expect((await api(b, 'GET', '/v1/workflows/wf-h/conflicts')).body).toEqual([])
    expect((await api(b, 'GET', '/v1/workflows/wf-h/violations')).body).toEqual([])

    expect((await api(b, 'DELETE', '/v1/workflows/wf-h')).status).toBe(204)
    expect((await api(b, 'GET', '/v1/workflows/wf-h')).status).toBe(404)
  })

  it('answers every error with { error: { code, message, details } } and the right status', async () => {
    const srv = await start({ schemas: { 'wf-s': z.object({ n: z.number() }) }, maxMessageSize: 4096 })
    const b = base(srv)
    await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-s', state: { n: 1 } } })
    const cases: Array<[string, Promise<Awaited<ReturnType<typeof api>>>, number, string]> = [
      ['unknown workflow', api(b, 'GET', '/v1/workflows/missing'), 404, 'NOT_FOUND'],
      ['unknown route', api(b, 'GET', '/v1/nothing'), 404, 'NOT_FOUND'],
      ['invalid id', api(b, 'GET', '/v1/workflows/bad!id'), 400, 'INVALID_WORKFLOW_ID'],
      ['invalid JSON body', api(b, 'PATCH', '/v1/workflows/wf-s', { raw: '[{"op":', headers: JP }), 400, 'INVALID_JSON'],
      ['not a patch', api(b, 'PATCH', '/v1/workflows/wf-s', { raw: '{"op":"add"}', headers: JP }), 400, 'INVALID_PATCH'],
      ['unresolvable path', api(b, 'PATCH', '/v1/workflows/wf-s', { raw: '[{"op":"remove","path":"/nope/x"}]', headers: JP }), 400, 'INVALID_PATCH'],
      ['failing test op', api(b, 'PATCH', '/v1/workflows/wf-s', { raw: '[{"op":"test","path":"/n","value":2}]', headers: JP }), 400, 'INVALID_PATCH'],
      ['schema violation', api(b, 'PATCH', '/v1/workflows/wf-s', { raw: '[{"op":"replace","path":"/n","value":"x"}]', headers: JP }), 400, 'SCHEMA_VIOLATION'],
      ['wrong content type', api(b, 'PATCH', '/v1/workflows/wf-s', { raw: '[]', headers: { 'content-type': 'text/plain' } }), 400, 'INVALID_REQUEST'],
      ['too large', api(b, 'PATCH', '/v1/workflows/wf-s', { raw: JSON.stringify([{ op: 'add', path: '/big', value: 'x'.repeat(5000) }]), headers: JP }), 413, 'MESSAGE_TOO_LARGE'],
      ['bad query', api(b, 'GET', '/v1/workflows/wf-s/diff?from=a&to=1'), 400, 'INVALID_REQUEST'],
      ['version past the head (a wrong argument, issue 17)', api(b, 'GET', '/v1/workflows/wf-s?version=99'), 400, 'INVALID_REQUEST'],
      ['invalid transition', api(b, 'POST', '/v1/workflows/wf-s/agents/x/transition', { body: { to: 'resuming' } }), 409, 'INVALID_TRANSITION'],
      ['method not allowed', api(b, 'PUT', '/v1/workflows/wf-s'), 400, 'INVALID_REQUEST'],
      // Every route is one row of one table: operations and inspector routes answer a wrong method alike.
      ['method not allowed on the backup', api(b, 'POST', '/v1/admin/backup'), 400, 'INVALID_REQUEST'],
      ['method not allowed on the list feed', api(b, 'DELETE', '/v1/watch/workflows'), 400, 'INVALID_REQUEST'],
      ['method not allowed on the inspector', api(b, 'POST', '/ui/'), 400, 'INVALID_REQUEST'],
      ['unknown route outside /v1', api(b, 'GET', '/nothing'), 404, 'NOT_FOUND']
    ]
    for (const [what, reply, status, code] of cases) {
      const r = await reply
      expect(r.status, what).toBe(status)
      expect(r.body, what).toMatchObject({ error: { code, message: expect.any(String) } })
      expect('details' in r.body.error, what).toBe(true)
    }
    const schemaError = (await api(b, 'PATCH', '/v1/workflows/wf-s', { raw: '[{"op":"replace","path":"/n","value":"x"}]', headers: JP })).body.error
    expect(schemaError.details.issues[0]).toMatchObject({ path: ['n'] })
    expect((await api(b, 'GET', '/v1/workflows/wf-s')).body.state).toEqual({ n: 1 }) // nothing written
  })

  it('a PATCH racing a Yjs edit on another key: both survive on every peer', async () => {
    const srv = await start()
    const b = base(srv)
    const agent = sdkAgent(srv.url, 'wf-race', 'yjs-agent')
    await agent.whenSynced()
    agent.update(d => { d.counter = 0; d.log = [] })
    await waitFor(async () => (await headOf(srv, 'wf-race')) === 1)
    for (let i = 1; i <= 20; i++) {
      agent.update(d => { d.counter = i })
      const r = await api(b, 'PATCH', '/v1/workflows/wf-race', { raw: JSON.stringify([{ op: 'add', path: '/log/-', value: `http-${i}` }]), headers: JP })
      expect(r.status).toBe(200)
    }
    const other = sdkAgent(srv.url, 'wf-race', 'observer')
    const final = await waitForConvergence([() => agent.state, () => other.state])
    expect(final).toEqual({ counter: 20, log: Array.from({ length: 20 }, (_, i) => `http-${i + 1}`) })
    expect((await api(b, 'GET', '/v1/workflows/wf-race')).body.state).toEqual(final)
  })

  it('runtime over HTTP: lifecycle, pause/resume, tasks', async () => {
    const srv = await start()
    const b = base(srv)
    await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-rt' } })
    const as = { headers: { 'x-accord-agent': 'py-agent' } }
    expect((await api(b, 'POST', '/v1/workflows/wf-rt/agents/py-agent/transition', { ...as, body: { to: 'processing', metadata: { step: 1 } } })).body).toMatchObject({ status: 'processing' })
    expect((await api(b, 'POST', '/v1/workflows/wf-rt/agents/py-agent/soft-reset', as)).body).toMatchObject({ status: 'idle' })
    const pushed = await api(b, 'POST', '/v1/workflows/wf-rt/tasks', { ...as, body: { payload: { job: 1 } } })
    expect(pushed).toMatchObject({ status: 201, body: { status: 'pending', createdBy: 'py-agent' } })
    const claimed = await api(b, 'POST', '/v1/workflows/wf-rt/tasks/claim', { ...as, body: { leaseMs: 5000 } })
    expect(claimed.body).toMatchObject({ id: pushed.body.id, claimedBy: 'py-agent' })
    expect((await api(b, 'POST', '/v1/workflows/wf-rt/tasks/claim', as)).status).toBe(204)
    const notMine = await api(b, 'POST', `/v1/workflows/wf-rt/tasks/${pushed.body.id as string}/complete`, { headers: { 'x-accord-agent': 'other' }, body: {} })
    expect(notMine).toMatchObject({ status: 409, body: { error: { code: 'NOT_TASK_OWNER' } } })
    expect((await api(b, 'POST', `/v1/workflows/wf-rt/tasks/${pushed.body.id as string}/complete`, { ...as, body: { result: 42 } })).body).toMatchObject({ status: 'done', result: 42 })
    expect((await api(b, 'GET', '/v1/workflows/wf-rt/tasks')).body).toHaveLength(1)

    expect((await api(b, 'POST', '/v1/workflows/wf-rt/pause', { ...as, body: { reason: 'review' } })).body).toMatchObject({ paused: true, reason: 'review' })
    const blocked = await api(b, 'PATCH', '/v1/workflows/wf-rt', { raw: '[{"op":"add","path":"/x","value":1}]', headers: JP })
    expect(blocked).toMatchObject({ status: 409, body: { error: { code: 'PAUSED' } } })
    expect((await api(b, 'POST', '/v1/workflows/wf-rt/resume', { ...as, body: { context: { ok: true } } })).body).toMatchObject({ paused: false, context: { ok: true } })
    expect((await api(b, 'GET', '/v1/workflows/wf-rt/runtime')).body).toMatchObject({ agents: { 'py-agent': { status: 'idle' } }, session: { paused: false } })
  })
})

describe('SSE change stream', () => {
  it('streams change records and, after a dropped connection, resumes with Last-Event-ID exactly once, in order', async () => {
    const srv = await start()
    const b = base(srv)
    await api(b, 'POST', '/v1/workflows', { body: { workflowId: 'wf-sse', state: { n: 0 } } })
    const writer = sdkAgent(srv.url, 'wf-sse', 'writer')
    await writer.whenSynced()
    const first = openSse(`${b}/v1/workflows/wf-sse/events`)
    streams.push(first)
    expect(await first.status).toBe(200)
    await waitFor(() => srv.server.connectionCount() >= 1)
    // The stream starts "now": wait until it is registered by writing and seeing it arrive.
    writer.update(d => { d.n = 1 }, { description: 'one' })
    await waitFor(() => first.events.length === 1, { what: 'first event' })
    expect(first.events[0]).toMatchObject({ id: '2', event: 'change' })
    expect(JSON.parse(first.events[0]!.data)).toMatchObject({ version: 2, author: 'writer', description: 'one', changes: [{ op: 'replace', path: '/n', value: 1 }] })
    first.close()

    for (let i = 2; i <= 6; i++) {
      writer.update(d => { d.n = i })
      await waitFor(async () => (await headOf(srv, 'wf-sse')) === i + 1)
    }
    const resumed = openSse(`${b}/v1/workflows/wf-sse/events`, { 'last-event-id': first.events[0]!.id! })
    streams.push(resumed)
    await waitFor(() => resumed.events.length === 5, { what: 'missed events' })
    writer.update(d => { d.n = 7 })
    await waitFor(() => resumed.events.length === 6, { what: 'live event after the replay' })
    expect(resumed.events.map(e => Number(e.id))).toEqual([3, 4, 5, 6, 7, 8])

    const filtered = openSse(`${b}/v1/workflows/wf-sse/events?after=0&path=/other`)
    streams.push(filtered)
    writer.update(d => { d.other = true })
    await waitFor(() => filtered.events.length === 1)
    expect(filtered.events[0]?.id).toBe('9')
    expect((await openSse(`${b}/v1/workflows/missing/events`).status)).toBe(404)
  })
})

describe('health and metrics', () => {
  it('serves /healthz, /readyz and Prometheus metrics with agent and server figures', async () => {
    const srv = await start()
    const b = base(srv)
    expect((await api(b, 'GET', '/healthz')).status).toBe(200)
    expect((await api(b, 'GET', '/readyz')).body).toEqual({ ready: true, state: 'listening', degraded: false, corruptWorkflows: [] })
    const a = sdkAgent(srv.url, 'wf-m', 'agent-m')
    await a.whenSynced()
    // One version per step: wait for each to be stored before the next.
    const step = async (fn: () => void): Promise<void> => {
      const before = await headOf(srv, 'wf-m')
      fn()
      await waitFor(async () => (await headOf(srv, 'wf-m')) > before)
    }
    await step(() => a.lifecycle.transition('processing'))
    await step(() => a.lifecycle.transition('error'))
    await step(() => a.lifecycle.transition('resuming'))
    await step(() => a.update(d => { d.x = 1 }))
    await a.createSnapshot({ name: 'backup' })
    const text = (await api(b, 'GET', '/metrics')).body as string
    const value = (line: string): number => Number(text.split('\n').find(l => l.startsWith(line + ' '))?.split(' ')[1])
    expect(value('agent_state_transitions_total{from="idle",to="processing"}')).toBe(1)
    expect(value('agent_state_transitions_total{from="error",to="resuming"}')).toBe(1)
    expect(value('agent_state_errors_total')).toBe(1)
    expect(value('agent_state_recovery_attempts_total')).toBe(1)
    expect(value('agent_state_backups_total')).toBe(1)
    expect(value('agent_state_duration_seconds_count{status="processing"}')).toBe(1)
    expect(value('active_agents')).toBe(1)
    expect(value('accord_connections')).toBe(1)
    expect(value('accord_workflows_loaded')).toBe(1)
    expect(value('accord_versions_persisted_total')).toBe(4)
    expect(value('accord_updates_persisted_total')).toBeGreaterThanOrEqual(4)
    expect(value('accord_bytes_persisted_total')).toBeGreaterThan(0)
    expect(value('accord_persist_latency_seconds_count')).toBe(4)
    expect(value('accord_workflow_load_seconds_count')).toBe(1)
    expect(value('accord_workflow_size_bytes{workflow="wf-m"}')).toBeGreaterThan(0)
    expect(text).toContain('accord_conflicts_total 0')
  })
})
