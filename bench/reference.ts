/**
 * The reference server: y-websocket@2.1.0's own `bin/server.cjs` (its `bin/utils` with y-leveldb
 * persistence via YPERSISTENCE), unmodified, in a child process; bench/reference-hook.cjs is
 * preloaded to count acknowledged y-leveldb writes and to answer heap queries over IPC.
 */
import net from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'
import { forkRpc } from './ipc.ts'
import { cpuSeconds, sleep } from './stats.ts'
import type { BenchServer, StartOptions } from './servers.ts'

const require = createRequire(import.meta.url)
export const REFERENCE_SERVER = path.join(path.dirname(require.resolve('y-websocket-v2/package.json')), 'bin/server.cjs')

const freePort = (): Promise<number> => new Promise((resolve, reject) => {
  const s = net.createServer()
  s.once('error', reject)
  s.listen(0, '127.0.0.1', () => {
    const port = (s.address() as net.AddressInfo).port
    s.close(() => { resolve(port) })
  })
})

export const startReference = async (o: StartOptions): Promise<BenchServer> => {
  const port = await freePort()
  const rpc = await forkRpc<{ pid: number }>(REFERENCE_SERVER, [], {
    execArgv: ['--expose-gc', '-r', path.join(import.meta.dirname, 'reference-hook.cjs')],
    env: { HOST: '127.0.0.1', PORT: String(port), YPERSISTENCE: o.dataDir }
  })
  // server.cjs says nothing over IPC when it listens: poll its HTTP answer ("okay").
  const until = Date.now() + 20_000
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(r => r.ok, () => false)
    if (ok) break
    if (Date.now() > until) {
      await rpc.stop()
      throw new Error('reference server did not listen')
    }
    await sleep(50)
  }
  return {
    kind: 'reference',
    url: `ws://127.0.0.1:${port}`,
    pid: rpc.child.pid as number,
    persisted: () => rpc.call<number>('persisted'),
    cpu: () => cpuSeconds(rpc.child.pid),
    heap: () => rpc.call<number>('heap'),
    loaded: () => rpc.call<number>('loaded'),
    stop: () => rpc.stop(10_000)
  }
}
