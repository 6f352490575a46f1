import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'

const { start } = useServers()

/** Opens a raw socket, sends `payload` once open, resolves with the close code and reason. */
const sendRaw = (url: string, payload: Uint8Array | string): Promise<{ code: number, reason: string }> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.on('open', () => { ws.send(payload) })
    ws.on('error', () => {})
    ws.on('close', (code, reason) => { resolve({ code, reason: reason.toString() }) })
    setTimeout(() => { reject(new Error('socket was not closed by the server')) }, 15_000).unref()
  })

const syncMessage = (syncType: number, payload: Uint8Array): Uint8Array => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, 0)
  encoding.writeVarUint(enc, syncType)
  encoding.writeVarUint8Array(enc, payload)
  return encoding.toUint8Array(enc)
}

describe('hostile input', () => {
  it('garbage and oversize messages close only the offending connection; others keep syncing', async () => {
    const srv = await start({ maxMessageSize: 64 * 1024 })
    const a = sdkAgent(srv.url, 'wf-h', 'agent-a')
    const b = sdkAgent(srv.url, 'wf-h', 'agent-b')
    const other = sdkAgent(srv.url, 'wf-other', 'agent-c')
    await Promise.all([a.whenSynced(), b.whenSynced(), other.whenSynced()])
    a.update(d => { d.before = true })
    await waitFor(() => b.state.before === true)

    const target = `${srv.url}/wf-h`
    const garbage: Array<[string, Uint8Array | string]> = [
      ['overlong varint', new Uint8Array(12).fill(0xff)],
      ['unknown message type', Uint8Array.of(77, 1, 2, 3)],
      ['unknown sync type', Uint8Array.of(0, 9, 1, 0)],
      ['truncated update length', Uint8Array.of(0, 2, 200, 1, 2)],
      ['garbage update with a valid header', syncMessage(2, Uint8Array.of(5, 250, 255, 255, 255, 255, 15, 1, 2, 3))],
      ['garbage state vector', syncMessage(0, Uint8Array.of(3, 255, 255))],
      ['garbage awareness', Uint8Array.of(1, 4, 1, 2, 3, 4)],
      ['text frame', 'hello']
    ]
    for (const [what, payload] of garbage) {
      const closed = await sendRaw(target, payload)
      expect(closed.code, what).toBe(4400)
      expect(closed.reason, what).toMatch(/malformed message/)
    }
    const big = await sendRaw(target, new Uint8Array(100 * 1024))
    expect(big).toMatchObject({ code: 4413 })
    expect(big.reason).toMatch(/too large/)
    const huge = await sendRaw(target, new Uint8Array(300 * 1024))
    expect(huge.code).toBe(1009) // above the hard ceiling, ws stops reading the frame itself

    const warnings = srv.logs.filter(l => l.msg === 'closing connection')
    expect(warnings.length).toBe(garbage.length + 1)

    a.update(d => { d.after = true })
    other.update(d => { d.alive = true })
    await waitFor(() => b.state.after === true, { what: 'honest peers still sync' })
    expect(b.state).toEqual({ before: true, after: true })
    expect(other.state).toEqual({ alive: true })
  })
})
