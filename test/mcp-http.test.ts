/**
 * `accord serve --mcp`: MCP over Streamable HTTP at /mcp of the installed command, driven by the
 * MCP SDK's own client. Same JWT auth and scopes as the rest of the server, Origin validated,
 * sessions bound to their agent, subscriptions notified by another agent's edit.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { spawnAccord } from './helpers/child.ts'
import { tempDir } from './helpers/server.ts'
import { waitFor } from './helpers/wait.ts'
import { api } from './helpers/http.ts'
import { call, closeMcpClients, connectHttp, errorCode } from './helpers/mcp.ts'
import { mintToken } from '../server/http/auth.ts'

const { start } = useServers() // also kills the spawned servers and removes temp dirs after each test
afterEach(closeMcpClients)
const secret = 'mcp-http-secret'
const token = (agentId: string, scopes: string[]): Promise<string> => mintToken({ secret, agentId, scopes })
const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })

const serve = async () => {
  const { port } = await spawnAccord(['serve', '--mcp', '--port', '0', '--data', await tempDir(), '--auth-secret', secret, '--log-level', 'warn'])
  const base = `http://127.0.0.1:${port}`
  const admin = await token('admin', ['admin:*'])
  expect((await api(base, 'POST', '/v1/workflows', { body: { workflowId: 'wf-1', state: { n: 0 } }, headers: bearer(admin) })).status).toBe(201)
  return { base, mcpUrl: `${base}/mcp`, admin }
}

const initialize = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } }
}
const post = (url: string, headers: Record<string, string>, body: unknown = initialize): Promise<Response> =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) })

describe('accord serve --mcp (Streamable HTTP)', () => {
  it('serves the tools as the token\'s agent and notifies a subscriber of another agent\'s edit', async () => {
    const { base, mcpUrl, admin } = await serve()
    const mcp = await connectHttp(mcpUrl, bearer(await token('claude', ['write:wf-*'])))
    expect((await mcp.client.listTools()).tools).toHaveLength(9)
    expect((await call(mcp, 'list_workflows')).body.workflows.map((w: any) => w.workflowId)).toEqual(['wf-1'])
    const patched = await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'replace', path: '/n', value: 1 }], ifVersion: 1, description: 'bump' })
    expect(patched.body).toEqual({ workflowId: 'wf-1', version: 2, state: { n: 1 } })
    expect(errorCode(await call(mcp, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'replace', path: '/n', value: 9 }], ifVersion: 1 }))).toBe('PRECONDITION_FAILED')
    const history = await call(mcp, 'history', { workflowId: 'wf-1', limit: 1 })
    expect(history.body.versions[0]).toMatchObject({ version: 2, author: 'claude', description: 'bump' })
    expect(errorCode(await call(mcp, 'read_state', { workflowId: 'wf-unknown' }))).toBe('NOT_FOUND')
    const task = await call(mcp, 'create_task', { workflowId: 'wf-1', payload: { job: 1 } })
    expect((await call(mcp, 'claim_task', { workflowId: 'wf-1' })).body.task).toMatchObject({ id: task.body.task.id, claimedBy: 'claude' })
    expect((await call(mcp, 'complete_task', { workflowId: 'wf-1', taskId: task.body.task.id })).body.task.status).toBe('done')

    await mcp.client.subscribeResource({ uri: 'accord://workflows/wf-1' })
    const edit = await api(base, 'PATCH', '/v1/workflows/wf-1', { raw: JSON.stringify([{ op: 'replace', path: '/n', value: 42 }]), headers: { ...bearer(admin), 'content-type': 'application/json-patch+json' } })
    expect(edit.status).toBe(200)
    await waitFor(() => mcp.updated.includes('accord://workflows/wf-1'), { what: 'resources/updated over HTTP' })
    expect(JSON.parse((((await mcp.client.readResource({ uri: 'accord://workflows/wf-1' })).contents[0]) as { text: string }).text)).toEqual({ n: 42 })
  })

  it('applies the server\'s auth and scopes: no token, a read-only token, another agent\'s session', async () => {
    const { mcpUrl } = await serve()
    const none = await post(mcpUrl, {})
    expect(none.status).toBe(401)
    expect((await none.json()).error.data.code).toBe('UNAUTHORIZED')
    expect((await post(mcpUrl, bearer('not-a-jwt'))).status).toBe(401)

    const reader = await connectHttp(mcpUrl, bearer(await token('observer', ['read:*'])))
    expect((await call(reader, 'read_state', { workflowId: 'wf-1' })).body.state).toEqual({ n: 0 })
    expect(errorCode(await call(reader, 'apply_patch', { workflowId: 'wf-1', ops: [{ op: 'replace', path: '/n', value: 1 }] }))).toBe('FORBIDDEN')
    expect(errorCode(await call(reader, 'create_task', { workflowId: 'wf-1', payload: 1 }))).toBe('FORBIDDEN')

    // A session is bound to the agent that opened it.
    const opened = await post(mcpUrl, bearer(await token('alice', ['write:*'])))
    expect(opened.status).toBe(200)
    const sessionId = opened.headers.get('mcp-session-id') as string
    expect(sessionId).toBeTruthy()
    await opened.body?.cancel()
    const hijack = await post(mcpUrl, { ...bearer(await token('mallory', ['write:*'])), 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' }, { jsonrpc: '2.0', id: 2, method: 'tools/list' })
    expect(hijack.status).toBe(403)
    expect((await post(mcpUrl, { ...bearer(await token('alice', ['write:*'])), 'mcp-session-id': 'no-such-session' }, { jsonrpc: '2.0', id: 2, method: 'tools/list' })).status).toBe(404)
    // Without a session the first request must be initialize.
    expect((await post(mcpUrl, bearer(await token('alice', ['write:*'])), { jsonrpc: '2.0', id: 3, method: 'tools/list' })).status).toBe(400)
  })

  it('validates Origin: foreign browser origins are refused, loopback ones and non-browser clients pass', async () => {
    const { mcpUrl } = await serve()
    const auth = bearer(await token('claude', ['write:*']))
    const foreign = await post(mcpUrl, { ...auth, origin: 'https://evil.example' })
    expect(foreign.status).toBe(403)
    expect((await foreign.json()).error.data.code).toBe('FORBIDDEN')
    // A DNS-rebinding page has a foreign Origin even when its Host resolves here.
    expect((await post(mcpUrl, { ...auth, origin: 'http://rebind.example:1234', host: 'rebind.example:1234' })).status).toBe(403)
    const local = await post(mcpUrl, { ...auth, origin: 'http://localhost:5173' })
    expect(local.status).toBe(200)
    await local.body?.cancel()
    const plain = await post(mcpUrl, auth)
    expect(plain.status).toBe(200)
    await plain.body?.cancel()
  })

  it('closes sessions that went idle', async () => {
    const srv = await start({ mcp: { idleMs: 200 } })
    const mcpUrl = `http://127.0.0.1:${srv.port}/mcp`
    const opened = await post(mcpUrl, { 'x-accord-agent': 'idler' })
    expect(opened.status).toBe(200)
    const sessionId = opened.headers.get('mcp-session-id') as string
    await opened.body?.cancel()
    const list = { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18', 'x-accord-agent': 'idler' }
    await waitFor(async () => (await post(mcpUrl, list, { jsonrpc: '2.0', id: 2, method: 'ping' })).status === 404, { what: 'idle session closed', intervalMs: 700 }) // each poll is activity: slower than idleMs

  })

  it('without auth, X-Accord-Agent names the author; closing the server ends its sessions', async () => {
    const srv = await start({ mcp: {} })
    const mcpUrl = `http://127.0.0.1:${srv.port}/mcp`
    expect((await api(`http://127.0.0.1:${srv.port}`, 'POST', '/v1/workflows', { body: { workflowId: 'wf-2', state: { a: 0 } } })).status).toBe(201)
    const mcp = await connectHttp(mcpUrl, { 'x-accord-agent': 'local-agent' })
    expect((await call(mcp, 'apply_patch', { workflowId: 'wf-2', ops: [{ op: 'replace', path: '/a', value: 1 }] })).body).toMatchObject({ version: 2, state: { a: 1 } })
    expect((await srv.server.history('wf-2', { limit: 1 }))[0]?.author).toBe('local-agent')
    await srv.stop()
    await expect(call(mcp, 'list_workflows')).rejects.toThrow()
  })
})
