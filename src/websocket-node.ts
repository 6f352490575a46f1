// Node 20 has no global WebSocket; `ws` provides a compatible one. Picked via package.json "imports".
import WebSocket from 'ws'

export default WebSocket as unknown as typeof globalThis.WebSocket
