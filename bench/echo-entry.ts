/** Bench-only child: a bare `ws` server that echoes every message (the loopback round-trip floor). */
import { WebSocketServer } from 'ws'
import type { AddressInfo } from 'node:net'
import { serveRpc } from './ipc.ts'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
await new Promise(resolve => wss.once('listening', resolve))
wss.on('connection', ws => {
  ws.on('message', (data, isBinary) => { ws.send(data, { binary: isBinary }) })
})
process.on('SIGTERM', () => { wss.close(() => process.exit(0)) })
serveRpc({}, { port: (wss.address() as AddressInfo).port })
