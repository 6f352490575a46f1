/**
 * `accord mcp` over stdio, driven by the MCP SDK's own client spawning the installed command
 * against a real server with JWT auth: every tool, the refusals (unknown workflow, malformed ops,
 * failing test op, stale ifVersion, read-only token), and resource subscriptions notified by
 * another agent's edit.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { api } from './helpers/http.ts'
import { call, closeMcpClients, connectStdio, errorCode } from './helpers/mcp.ts'
import { runAccord } from './helpers/child.ts'
import { mintToken } from '../server/http/auth.ts'

const { start } = useServers()
afterEach(closeMcpClients)
const secret = 'mcp-test-secret'
const token = (agentId: string, scopes: string[]): Promise<string> => mintToken({ secret, agentId, scopes })
const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })

const setup = async () => {
  const srv = await start({ auth: { secret } })
  const base = `http://127.0.0.1:${srv.port}`
  const admin = await token('admin', ['admin:*'])
  const created = await api(base, 'POST', '/v1/workflows', { body: { workflowId: 'wf-1', state: { status: 'draft', items: [1, 2] } }, headers: bearer(admin) })
  expect(created.status).toBe(201)
  const writer = await token('claude', ['write:wf-*'])
  return { srv, base, admin, writer }
}

describe('accord mcp (stdio)', () => {
  it('lists exactly the Accord tools and reads, patches, diffs and lists history as the token\'s agent', async () => {
    const { srv, writer } = await setup()
    const mcp = await connectStdio(['--server', srv.url, '--token', writer])
    const { tools } = await mcp.client.listTools()
    expect(tools.map(t => t.name).sort()).toEqual(['apply_patch', 'claim_task', 'complete_task', 'create_task', 'diff', 'fail_task', 'history', 'list_workflows', 'read_state'])

    const listed = await call(mcp, 'list_workflows')
    expect(listed.body.workflows).toEqual([expect.objectContaining({ workflowId: 'wf-1', version: 1 })])

    expect((await call(mcp, 'read_state', { workflowId: 'wf-1' })).body).toEqual({ workflowId: 'wf-1', version: 1, state: { status: 'draft', items: [1, 2] } })
    expect((await call(mcp, 'read_state', { workflowId: 'wf-1', path: '/items/1' })).body).toMatchObject({ version: 1, path: '/items/1', value: 2 })

    const patched = await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'replace', path: '/status', value: 'review' }, { op: 'add', path: '/items/-', value: 3 }], description: 'ready for review' })
    expect(patched.isError).toBe(false)
    expect(patched.body).toEqual({ workflowId: 'wf-1', version: 2, state: { status: 'review', items: [1, 2, 3] } })
    // Conditional on the version it read.
    expect((await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'replace', path: '/status', value: 'approved' }], ifVersion: 2 })).body.version).toBe(3)

    const history = await call(mcp, 'history', { workflowId: 'wf-1', limit: 2 })
    expect(history.body.versions.map((v: any) => [v.version, v.author])).toEqual([[3, 'claude'], [2, 'claude']])
    expect(history.body.versions[1]).toMatchObject({ description: 'ready for review', changes: expect.arrayContaining([{ op: 'replace', path: '/status', value: 'review' }]) })
    expect(history.body.versions[0].snapshot).toBeUndefined()
    expect((await call(mcp, 'history', { workflowId: 'wf-1', before: 3, limit: 1 })).body.versions.map((v: any) => v.version)).toEqual([2])

    expect((await call(mcp, 'diff', { workflowId: 'wf-1', from: 1, to: 3 })).body.ops).toEqual(expect.arrayContaining([{ op: 'replace', path: '/status', value: 'approved' }, { op: 'add', path: '/items/2', value: 3 }]))
    expect((await call(mcp, 'read_state', { workflowId: 'wf-1', version: 1 })).body.state).toEqual({ status: 'draft', items: [1, 2] })
    // The server's own record agrees on the author.
    expect((await srv.server.history('wf-1', { limit: 1 }))[0]?.author).toBe('claude')
  })

  it('creates, claims, completes and fails tasks as the token\'s agent', async () => {
    const { srv, writer } = await setup()
    const mcp = await connectStdio(['--server', srv.url, '--token', writer])
    const first = await call(mcp, 'create_task', { workflowId: 'wf-1', payload: { step: 'build' }, kind: 'queue' })
    expect(first.body.task).toMatchObject({ kind: 'queue', status: 'pending', createdBy: 'claude', payload: { step: 'build' } })
    const second = await call(mcp, 'create_task', { workflowId: 'wf-1', payload: 'test', kind: 'queue' })

    const claimed = await call(mcp, 'claim_task', { workflowId: 'wf-1', kind: 'queue', leaseMs: 60_000 })
    expect(claimed.body.task).toMatchObject({ id: first.body.task.id, status: 'claimed', claimedBy: 'claude', leaseMs: 60_000 })
    const done = await call(mcp, 'complete_task', { workflowId: 'wf-1', taskId: first.body.task.id, result: { ok: true } })
    expect(done.body.task).toMatchObject({ status: 'done', result: { ok: true } })

    expect((await call(mcp, 'claim_task', { workflowId: 'wf-1', kind: 'queue' })).body.task.id).toBe(second.body.task.id)
    const failed = await call(mcp, 'fail_task', { workflowId: 'wf-1', taskId: second.body.task.id, error: 'flaky' })
    expect(failed.body.task).toMatchObject({ id: second.body.task.id, attempts: 1 })
    // Completing a task nobody claimed is refused with the server's code.
    expect(errorCode(await call(mcp, 'complete_task', { workflowId: 'wf-1', taskId: first.body.task.id }))).toMatch(/^(NOT_TASK_OWNER|INVALID_TRANSITION|INVALID_REQUEST|CONFLICT)$/)
    const runtime = await api(`http://127.0.0.1:${srv.port}`, 'GET', '/v1/workflows/wf-1/tasks', { headers: bearer(writer) })
    expect(runtime.body.map((t: any) => t.status)).toEqual(['done', failed.body.task.status])
  })

  it('refuses bad input as tool errors with Accord codes and changes nothing', async () => {
    const { srv, base, writer, admin } = await setup()
    const mcp = await connectStdio(['--server', srv.url, '--token', writer])

    for (const [name, args] of [
      ['read_state', { workflowId: 'wf-nope' }],
      ['history', { workflowId: 'wf-nope' }],
      ['diff', { workflowId: 'wf-nope', from: 0, to: 1 }],
      ['apply_patch', { workflowId: 'wf-nope', ops: [{ op: 'add', path: '/a', value: 1 }] }],
      ['create_task', { workflowId: 'wf-nope', payload: 1 }],
      ['claim_task', { workflowId: 'wf-nope' }]
    ] as const) {
      expect(errorCode(await call(mcp, name, args)), name).toBe('NOT_FOUND')
    }
    // Naming a workflow never creates it.
    expect((await call(mcp, 'list_workflows')).body.workflows.map((w: any) => w.workflowId)).toEqual(['wf-1'])
    expect(await srv.server.store.getMeta('wf-nope')).toBeNull()

    expect(errorCode(await call(mcp, 'read_state', { workflowId: 'bad id/..' }))).toBe('INVALID_WORKFLOW_ID')
    expect(errorCode(await call(mcp, 'read_state', { workflowId: 'wf-1', path: '/missing' }))).toBe('NOT_FOUND')
    expect(errorCode(await call(mcp, 'read_state', { workflowId: 'wf-1', version: 99 }))).toBe('INVALID_REQUEST') // past the head: the HTTP API's 400 naming the range
    expect(errorCode(await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'frobnicate', path: '/status' }] }))).toBe('INVALID_PATCH')
    expect(errorCode(await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ value: 1 }] }))).toBe('INVALID_PATCH')
    const failingTest = await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'test', path: '/status', value: 'approved' }, { op: 'replace', path: '/status', value: 'shipped' }] })
    expect(errorCode(failingTest)).toBe('INVALID_PATCH')
    const stale = await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'replace', path: '/status', value: 'shipped' }], ifVersion: 0 })
    expect(errorCode(stale)).toBe('PRECONDITION_FAILED')
    // Input the schema refuses is a tool error too, not a crash.
    expect((await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: 'not a list' })).isError).toBe(true)

    const now = await api(base, 'GET', '/v1/workflows/wf-1', { headers: bearer(admin) })
    expect(now.body).toMatchObject({ version: 1, state: { status: 'draft', items: [1, 2] } })
    // The session still works after all of that.
    expect((await call(mcp, 'read_state', { workflowId: 'wf-1' })).body.version).toBe(1)
  })

  it('refuses writes for a token without write scope, and still serves its reads', async () => {
    const { srv, base, admin } = await setup()
    const reader = await token('observer', ['read:*'])
    const mcp = await connectStdio(['--server', srv.url, '--token', reader])
    expect((await call(mcp, 'read_state', { workflowId: 'wf-1' })).body.state.status).toBe('draft')
    expect(errorCode(await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'replace', path: '/status', value: 'hacked' }] }))).toBe('FORBIDDEN')
    expect(errorCode(await call(mcp, 'create_task', { workflowId: 'wf-1', payload: 'x' }))).toBe('FORBIDDEN')
    expect(errorCode(await call(mcp, 'claim_task', { workflowId: 'wf-1' }))).toBe('FORBIDDEN')
    expect((await call(mcp, 'history', { workflowId: 'wf-1' })).body.versions).toHaveLength(1)
    expect((await api(base, 'GET', '/v1/workflows/wf-1', { headers: bearer(admin) })).body.version).toBe(1)
    // A token for other workflows sees none of these.
    const stranger = await connectStdio(['--server', srv.url, '--token', await token('stranger', ['write:other-*'])])
    expect((await call(stranger, 'list_workflows')).body.workflows).toEqual([])
    expect(errorCode(await call(stranger, 'read_state', { workflowId: 'wf-1' }))).toBe('FORBIDDEN')
  })

  it('serves workflows as resources and notifies subscribers of another agent\'s edit', async () => {
    const { srv, writer } = await setup()
    const mcp = await connectStdio(['--server', srv.url, '--token', writer])
    const { resourceTemplates } = await mcp.client.listResourceTemplates()
    expect(resourceTemplates.map(t => t.uriTemplate)).toEqual(['accord://workflows/{workflowId}'])
    expect((await mcp.client.listResources()).resources.map(r => r.uri)).toEqual(['accord://workflows/wf-1'])
    const read = await mcp.client.readResource({ uri: 'accord://workflows/wf-1' })
    expect(JSON.parse((read.contents[0] as { text: string }).text)).toEqual({ status: 'draft', items: [1, 2] })
    await expect(mcp.client.readResource({ uri: 'accord://workflows/wf-nope' })).rejects.toMatchObject({ code: -32002, message: expect.stringContaining('NOT_FOUND') })
    await expect(mcp.client.subscribeResource({ uri: 'accord://workflows/wf-nope' })).rejects.toMatchObject({ code: -32002 })

    await mcp.client.subscribeResource({ uri: 'accord://workflows/wf-1' })
    const other = sdkAgent(srv.url, 'wf-1', 'codex', { token: await token('codex', ['write:*']) })
    await other.whenSynced()
    other.update(s => { s.status = 'edited by codex' })
    await waitFor(() => mcp.updated.includes('accord://workflows/wf-1'), { what: 'resources/updated after another agent\'s edit' })
    const after = await mcp.client.readResource({ uri: 'accord://workflows/wf-1' })
    expect(JSON.parse((after.contents[0] as { text: string }).text).status).toBe('edited by codex')

    await mcp.client.unsubscribeResource({ uri: 'accord://workflows/wf-1' })
    const seen = mcp.updated.length
    other.update(s => { s.status = 'again' })
    await waitFor(async () => (await srv.server.history('wf-1', { limit: 1 }))[0]?.version === 3, { what: 'the second edit stored' })
    // A third, subscribed edit proves the notification channel still works and the unsubscribed one was not sent.
    await mcp.client.subscribeResource({ uri: 'accord://workflows/wf-1' })
    other.update(s => { s.status = 'third' })
    await waitFor(() => mcp.updated.length > seen, { what: 'notification after resubscribing' })
    expect(mcp.updated.length).toBe(seen + 1)
  })

  it('exits 2 with its usage on a bad option, 0 on --help', async () => {
    const bad = await runAccord(['mcp', '--bogus'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/Unknown option '--bogus'[\s\S]*--server <url>/)
    expect(bad.stdout).toBe('')
    const help = await runAccord(['mcp', '--help'])
    expect(help).toMatchObject({ code: 0, stdout: expect.stringContaining('--token <jwt>') })
  })
})
