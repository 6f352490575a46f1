import http from 'node:http'

export interface Reply {
  status: number
  headers: Headers
  body: any
}

/** A JSON request against a test server; never throws on HTTP errors. */
export const api = async (base: string, method: string, path: string, options: { body?: unknown, headers?: Record<string, string>, raw?: string } = {}): Promise<Reply> => {
  const headers: Record<string, string> = { ...options.headers }
  let body: string | undefined = options.raw
  if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    headers['content-type'] ??= 'application/json'
  }
  const res = await fetch(base + path, { method, headers, body })
  const text = await res.text()
  let parsed: unknown = text
  try { parsed = text === '' ? null : JSON.parse(text) } catch {}
  return { status: res.status, headers: res.headers, body: parsed }
}

export interface SseEvent { id?: string, event?: string, data: string }

/**
 * Opens an SSE stream with node:http (so the test controls the socket); `events` fills as they
 * arrive. `close()` drops the connection.
 */
export const openSse = (url: string, headers: Record<string, string> = {}): { events: SseEvent[], status: Promise<number>, close: () => void } => {
  const events: SseEvent[] = []
  let buffer = ''
  let settle: (n: number) => void = () => {}
  const status = new Promise<number>(resolve => { settle = resolve })
  const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, res => {
    settle(res.statusCode ?? 0)
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => {
      buffer += chunk
      let end
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const event: SseEvent = { data: '' }
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) event.id = line.slice(4)
          else if (line.startsWith('event: ')) event.event = line.slice(7)
          else if (line.startsWith('data: ')) event.data += line.slice(6)
        }
        if (event.event !== undefined) events.push(event)
      }
    })
    res.on('error', () => {})
  })
  req.on('error', () => { settle(0) })
  return { events, status, close: () => { req.destroy() } }
}
