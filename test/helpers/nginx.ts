/**
 * A real nginx in front of test servers, running the shipped balancer config
 * (examples/compose/nginx.conf) with its upstream servers and listen port swapped for the
 * test's. Needs the nginx binary (Debian's package; .ci/run installs it): `nginxMissing()` says
 * why not, for a skip with a printed reason.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from './server.ts'
import { waitFor } from './wait.ts'

const CONFIG = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../examples/compose/nginx.conf')
const BINARY = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(p => spawnSync(p, ['-v']).status === 0)

/** Why nginx cannot be used (null: it can, or CI requires it: then startNginx fails loudly). */
export const nginxMissing = (): string | null =>
  BINARY !== undefined || process.env.ACCORD_REQUIRE_SERVICES === '1' ? null : 'no nginx binary (apt-get install nginx; set ACCORD_REQUIRE_SERVICES=1 to fail instead)'

export interface Nginx {
  /** ws://127.0.0.1:<port> */
  url: string
  http: string
  stop: () => Promise<void>
}

const freePort = (): Promise<number> => new Promise((resolve, reject) => {
  const probe = net.createServer()
  probe.once('error', reject)
  probe.listen(0, '127.0.0.1', () => {
    const port = (probe.address() as net.AddressInfo).port
    probe.close(() => { resolve(port) })
  })
})

const answers = (port: number): Promise<boolean> => new Promise(resolve => {
  const socket = net.connect(port, '127.0.0.1')
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('error', () => { resolve(false) })
})

/** Starts nginx balancing over `ports` (127.0.0.1) with the shipped config. */
export const startNginx = async (ports: number[]): Promise<Nginx> => {
  if (BINARY === undefined) throw new Error('no nginx binary (apt-get install nginx)')
  const prefix = await tempDir('accord-nginx-')
  await mkdir(path.join(prefix, 'logs'))
  const shipped = await readFile(CONFIG, 'utf8')
  const port = await freePort()
  const upstreams = ports.map(p => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join('\n')
  const config = shipped
    .replace(/(?: {4}server accord-\d+:1234[^\n]*\n)+/, `${upstreams}\n`)
    .replace('listen 8080;', `listen 127.0.0.1:${port};\n    access_log off;`)
  if (config === shipped || !config.includes(`127.0.0.1:${ports[0]}`)) throw new Error('examples/compose/nginx.conf no longer has the upstream lines this helper replaces')
  const file = path.join(prefix, 'nginx.conf')
  await writeFile(file, config)
  const child: ChildProcess = spawn(BINARY, ['-p', prefix, '-c', file, '-g', `daemon off; master_process on; worker_processes 1; pid ${path.join(prefix, 'nginx.pid')}; error_log ${path.join(prefix, 'logs/error.log')} warn;`], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', d => { stderr += String(d) })
  const exited = new Promise<void>(resolve => { child.once('exit', () => { resolve() }) })
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`)
    return await answers(port)
  }, { timeoutMs: 10_000, what: 'nginx to listen' })
  return {
    url: `ws://127.0.0.1:${port}`,
    http: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGQUIT')
      await exited
    }
  }
}
