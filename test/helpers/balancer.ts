/**
 * A TCP load balancer for cluster tests: each new connection goes to the next backend that
 * accepts it (round robin, skipping dead ones), the way users run several servers behind one.
 * `{ random: seed }` picks the first backend at random instead (seeded, so a run repeats): the
 * bench's spread setups need it, because round robin over 2 servers with agents opened
 * agent-major over 20 workflows sends every agent of a workflow to the same server.
 *
 *   const lb = await startBalancer(() => ports, { random: 1 })
 */
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import * as prng from 'lib0/prng'

export interface Balancer {
  url: string
  port: number
  close: () => Promise<void>
}

export const startBalancer = async (backends: () => number[], options: { random?: number } = {}): Promise<Balancer> => {
  let next = 0
  const gen = options.random === undefined ? null : prng.create(options.random)
  const sockets = new Set<net.Socket>()
  const connectTo = (client: net.Socket, tries: number): void => {
    const ports = backends()
    if (tries >= ports.length || client.destroyed) {
      client.destroy()
      return
    }
    // Random: only the first try is drawn; a retry moves on to the next backend, as round robin.
    if (gen !== null && tries === 0) next = prng.uint32(gen, 0, ports.length - 1)
    const port = ports[next++ % ports.length] as number
    const upstream = net.connect({ host: '127.0.0.1', port })
    sockets.add(upstream)
    upstream.once('connect', () => {
      upstream.removeAllListeners('error')
      upstream.on('error', () => { client.destroy() })
      client.on('error', () => { upstream.destroy() })
      client.pipe(upstream).pipe(client)
      client.resume()
    })
    upstream.once('error', () => { sockets.delete(upstream); connectTo(client, tries + 1) })
    upstream.once('close', () => { sockets.delete(upstream); client.destroy() })
  }
  const server = net.createServer({ pauseOnConnect: true }, client => {
    sockets.add(client)
    client.once('close', () => { sockets.delete(client) })
    connectTo(client, 0)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}
