/**
 * DNS rebinding: without auth, a page on evil.example resolving to 127.0.0.1 reaches the server
 * with `Host: evil.example` (and its own Origin). Such requests, HTTP and WebSocket, are refused;
 * loopback clients and listed origins keep working.
 */
import { spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { useServers } from './helpers/use-servers.ts'
import { tempDir } from './helpers/server.ts'
import { api } from './helpers/http.ts'
import { mintToken } from '../server/http/auth.ts'
import { createServer } from '../server/server.ts'

const { start } = useServers()

/** A raw HTTP request with exactly these headers (fetch would not let a test forge Host). */
const raw = (port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number, body: any }> =>
  new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, setHost: false }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
    })
    req.on('error', reject)
    req.end(body)
  })

/** How the server treats a WebSocket with these headers: the close it sends, or 'open' after a sync reply. */
const wsOutcome = (port: number, path: string, headers: Record<string, string>): Promise<{ code: number, reason: string } | 'synced'> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers })
    ws.on('message', () => { ws.close(); resolve('synced') })
    ws.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
    ws.on('error', reject)
  })

describe('DNS rebinding protection (no auth)', () => {
  it('refuses HTTP requests whose Host is not loopback, and browser requests from other origins', async () => {
    const srv = await start()
    const p = srv.port
    const ok = await raw(p, 'POST', '/v1/workflows', { host: `127.0.0.1:${p}`, 'content-type': 'application/json' }, '{"workflowId":"wf-o","state":{"secret":1}}')
    expect(ok.status).toBe(201)

    const rebound = await raw(p, 'GET', '/v1/workflows/wf-o', { host: `evil.example:${p}` })
    expect(rebound.status).toBe(403)
    expect(rebound.body.error).toMatchObject({ code: 'FORBIDDEN' })
    expect(rebound.body.error.message).toMatch(/Host evil\.example:\d+ is not a loopback name/)
    expect(JSON.stringify(rebound.body)).not.toContain('secret')
    const write = await raw(p, 'PATCH', '/v1/workflows/wf-o', { host: 'evil.example', origin: 'http://evil.example', 'content-type': 'application/json-patch+json' }, '[{"op":"add","path":"/pwned","value":true}]')
    expect(write.status).toBe(403)
    expect((await raw(p, 'GET', '/metrics', { host: 'rebind.127.0.0.1.nip.io' })).status).toBe(403)
    // No Host at all: Node's HTTP/1.1 parser answers 400 before any route runs.
    expect((await raw(p, 'GET', '/v1/workflows', {})).status).toBe(400)

    // A cross-site page with a loopback Host (a plain fetch from evil.example to 127.0.0.1).
    const crossSite = await raw(p, 'POST', '/v1/workflows/wf-o/tasks', { host: `127.0.0.1:${p}`, origin: 'https://evil.example', 'content-type': 'application/json' }, '{"payload":1}')
    expect(crossSite.status).toBe(403)
    expect(crossSite.body.error.message).toMatch(/Origin https:\/\/evil\.example is not allowed.*--allow-origin/)
    expect((await raw(p, 'GET', '/v1/workflows/wf-o', { host: `localhost:${p}`, origin: 'null' })).status).toBe(403)

    // Loopback names and pages keep working.
    for (const host of [`localhost:${p}`, `127.0.0.1:${p}`, `[::1]:${p}`, `app.localhost:${p}`, '127.0.0.1']) {
      expect((await raw(p, 'GET', '/v1/workflows/wf-o', { host })).status, host).toBe(200)
    }
    expect((await raw(p, 'GET', '/v1/workflows/wf-o', { host: `localhost:${p}`, origin: `http://localhost:${p}` })).status).toBe(200)
    expect((await raw(p, 'GET', '/v1/workflows/wf-o', { host: `localhost:${p}`, origin: 'http://127.0.0.1:5173' })).status).toBe(200)
    const state = await api(`http://127.0.0.1:${p}`, 'GET', '/v1/workflows/wf-o')
    expect(state.body.state).toEqual({ secret: 1 })
    expect((await api(`http://127.0.0.1:${p}`, 'GET', '/v1/workflows/wf-o/tasks')).body).toEqual([])
  })

  it('refuses WebSocket upgrades with a foreign Host or Origin (4403, with the reason); loopback ones sync', async () => {
    const srv = await start()
    const p = srv.port
    const rebound = await wsOutcome(p, '/wf-w', { host: `evil.example:${p}` })
    expect(rebound).toMatchObject({ code: 4403 })
    expect((rebound as { reason: string }).reason).toMatch(/^Host evil\.example/)
    const crossSite = await wsOutcome(p, '/wf-w', { origin: 'https://evil.example' })
    expect(crossSite).toMatchObject({ code: 4403 })
    expect((crossSite as { reason: string }).reason).toMatch(/^Origin https:\/\/evil\.example is not allowed/)
    expect(srv.server.loadedWorkflows()).toEqual([])
    expect(await wsOutcome(p, '/wf-w', { origin: `http://localhost:${p}` })).toBe('synced')
    expect(await wsOutcome(p, '/wf-w', {})).toBe('synced')
  })

  it('lets listed origins in (allowedOrigins), nothing else; with auth, tokens decide instead', async () => {
    const srv = await start({ allowedOrigins: ['https://App.Example', 'http://tools.internal:8080/'] })
    const p = srv.port
    const host = `127.0.0.1:${p}`
    expect((await raw(p, 'GET', '/v1/workflows', { host, origin: 'https://app.example' })).status).toBe(200)
    expect((await raw(p, 'GET', '/v1/workflows', { host, origin: 'http://tools.internal:8080' })).status).toBe(200)
    expect((await raw(p, 'GET', '/v1/workflows', { host, origin: 'http://tools.internal:8081' })).status).toBe(403)
    expect((await raw(p, 'GET', '/v1/workflows', { host, origin: 'http://app.example' })).status).toBe(403)
    expect(await wsOutcome(p, '/wf-l', { origin: 'https://app.example' })).toBe('synced')
    expect(await wsOutcome(p, '/wf-l', { origin: 'https://other.example' })).toMatchObject({ code: 4403 })
    // Listed origins do not widen Host: a rebound name is still refused.
    expect((await raw(p, 'GET', '/v1/workflows', { host: 'app.example', origin: 'https://app.example' })).status).toBe(403)

    const bad = createServer({ port: 0, store: srv.server.store, allowedOrigins: ['not an origin'], log: { level: 'silent' } })
    await expect(bad.listen()).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(/invalid allowed origin "not an origin"/) })

    const secret = 'origin-test-secret'
    const authed = await start({ auth: { secret } })
    const token = await mintToken({ secret, agentId: 'a', scopes: ['read:*'] })
    const reply = await raw(authed.port, 'GET', '/v1/workflows', { host: 'accord.example.com', origin: 'https://dashboard.example.com', authorization: `Bearer ${token}` })
    expect(reply.status).toBe(200)
  })

  it('accord serve --allow-origin (repeatable) lets those pages in (needs npm run build)', async () => {
    const data = await tempDir('accord-origin-cli-')
    const cli = path.resolve(import.meta.dirname, '../bin/accord.js')
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--data', data, '--log-level', 'silent', '--allow-origin', 'https://app.example', '--allow-origin', 'https://b.example'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise(resolve => { child.on('exit', resolve) })
    try {
      let out = ''
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          const m = /accord serving on ws:\/\/127\.0\.0\.1:(\d+)/.exec(out)
          if (m !== null) resolve(Number(m[1]))
        })
        child.on('exit', code => { reject(new Error(`accord serve exited with ${String(code)}: ${out}`)) })
      })
      const host = `127.0.0.1:${port}`
      expect((await raw(port, 'GET', '/v1/workflows', { host, origin: 'https://app.example' })).status).toBe(200)
      expect((await raw(port, 'GET', '/v1/workflows', { host, origin: 'https://b.example' })).status).toBe(200)
      expect((await raw(port, 'GET', '/v1/workflows', { host, origin: 'https://c.example' })).status).toBe(403)
    } finally {
      child.kill('SIGTERM')
      await exited
    }
  }, 30_000)
})
