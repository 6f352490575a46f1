// Node 20 has no global WebSocket; `ws` provides a compatible one (the Node entry's default).
import WebSocket from 'ws'

export default WebSocket as unknown as typeof globalThis.WebSocket
