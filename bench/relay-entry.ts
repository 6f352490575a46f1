/**
 * Bench-only child: a bare relay, to show what forwarding alone costs. It speaks just enough of
 * the y-websocket protocol (through y-protocols) for stock clients to sync, then forwards every
 * sync update frame as it is to the room's other sockets: no document, no storage, no checks.
 * What the load generator measures against it is the machine's and the generator's share of the
 * latency when every update travels as its own frame.
 */
import type { AddressInfo } from 'node:net'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import { WebSocketServer, type WebSocket } from 'ws'
import { serveRpc } from './ipc.ts'

const SYNC = 0
const rooms = new Map<string, Set<WebSocket>>()
/** Answers every client's sync step 1 (the relay holds no state, so step 2 is always empty). */
const empty = new Y.Doc()
let forwarded = 0

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
await new Promise(resolve => wss.once('listening', resolve))
wss.on('connection', (ws, req) => {
  const room = decodeURIComponent((req.url ?? '/').slice(1).split('?')[0] ?? '')
  const peers = rooms.get(room) ?? new Set<WebSocket>()
  rooms.set(room, peers)
  peers.add(ws)
  ws.on('close', () => { peers.delete(ws) })
  ws.on('message', (data: Buffer) => {
    const decoder = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    if (decoding.readVarUint(decoder) !== SYNC) return
    const kind = decoding.readVarUint(decoder)
    if (kind === syncProtocol.messageYjsSyncStep1) {
      const reply = encoding.createEncoder()
      encoding.writeVarUint(reply, SYNC)
      syncProtocol.writeSyncStep2(reply, empty, decoding.readVarUint8Array(decoder))
      ws.send(encoding.toUint8Array(reply))
      return
    }
    if (kind !== syncProtocol.messageYjsUpdate) return
    forwarded++
    for (const peer of peers) if (peer !== ws) peer.send(data)
  })
})
process.on('SIGTERM', () => { wss.close(() => process.exit(0)) })
serveRpc({ forwarded: () => forwarded }, { port: (wss.address() as AddressInfo).port })
