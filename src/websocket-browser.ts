// Browsers (and Node >= 22) have a global WebSocket. Picked via package.json "imports".
export default globalThis.WebSocket
