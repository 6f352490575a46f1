/**
 * The servers under test, each its own child process on 127.0.0.1 behind one small interface:
 * Accord through its real CLI (`bin/accord.js serve`, LevelDB or `--store memory`), Accord through
 * bench/server-entry.ts when heap must be read (IPC, --expose-gc), and the reference (reference.ts).
 * Persisted updates are counted from the store side: Accord's `accord_updates_persisted_total`
 * (incremented after the store acknowledged a batch), the reference's acknowledged y-leveldb writes.
 */
import { spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { forkRpc, waitExit } from './ipc.ts'
import { cpuSeconds } from './stats.ts'
import { startReference } from './reference.ts'

export type Kind = 'accord' | 'accord-memory' | 'reference'
export const LABEL: Record<Kind, string> = { accord: 'Accord', 'accord-memory': 'Accord, no persistence', reference: 'reference (y-websocket@2 + y-leveldb)' }

export interface BenchServer {
  kind: Kind | 'relay'
  url: string
  pid: number
  /** Updates the store has acknowledged so far. */
  persisted: () => Promise<number>
  /** Server CPU seconds (all threads) so far. */
  cpu: () => Promise<number>
  /** Heap after full GCs (IPC servers only). */
  heap?: () => Promise<number>
  /** Writes a V8 heap snapshot to `file` (Accord IPC server only). */
  snapshot?: (file: string) => Promise<string>
  /** Workflows held in memory (IPC servers only). */
  loaded?: () => Promise<number>
  stop: () => Promise<void>
  /** The end of the server's stderr and how it exited, if it did (for error reports). */
  lastError?: () => string
}

export interface StartOptions {
  dataDir: string
  /** Write CPU profiles (Accord only) into `profileDir/profileName/`. */
  profileDir?: string
  profileName?: string
  /** Use the IPC entry with --expose-gc (heap scenarios). */
  heap?: boolean
  evictionGraceMs?: number
  /** More createServer options for the IPC entry (experiments: retention, keyframeEvery, ...). */
  serverOptions?: Record<string, unknown>
  /** More `accord serve` flags for the CLI server (the cluster: --store postgres://, --bus). */
  serveArgs?: string[]
  /** Node/V8 flags for the CLI server's process (experiments: GC settings). */
  nodeArgs?: string[]
}

export const root = path.resolve(import.meta.dirname, '..')

/** GET on a fresh connection each time (a reused keep-alive socket can race the server's close). */
const getText = (url: string, timeoutMs = 30_000): Promise<string> => new Promise((resolve, reject) => {
  const req = http.get(url, { agent: false, timeout: timeoutMs }, res => {
    let body = ''
    res.setEncoding('utf8')
    res.on('data', (d: string) => { body += d })
    res.on('end', () => { resolve(body) })
    res.on('error', reject)
  })
  req.on('timeout', () => { req.destroy(new Error(`GET ${url} timed out`)) })
  req.on('error', (err: Error) => { reject(new Error(`GET ${url}: ${err.message}`)) })
})

const metric = async (port: number, name: string): Promise<number> => {
  const text = await getText(`http://127.0.0.1:${port}/metrics`)
  const line = text.split('\n').find(l => l.startsWith(name + ' '))
  return line === undefined ? 0 : Number(line.slice(name.length + 1))
}

/** A counter summed over several servers (a cluster's persisted or forwarded updates). */
export const metricSum = async (ports: number[], name: string): Promise<number> =>
  (await Promise.all(ports.map(port => metric(port, name)))).reduce((x, y) => x + y, 0)

/**
 * Each server profiles into its own directory under profileDir: tsx's loader runs in a worker
 * thread that writes a profile too, and Node names files CPU.<date>.<pid>.<thread>.<seq>; the
 * main thread's is the one with thread id 0.
 */
const profileArgs = (kind: Kind, o: StartOptions): string[] =>
  o.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.join(o.profileDir, o.profileName ?? kind)]

const startAccordCli = (kind: Kind, o: StartOptions): Promise<BenchServer> => new Promise((resolve, reject) => {
  const args = [...o.nodeArgs ?? [], ...profileArgs(kind, o), path.join(root, 'bin/accord.js'), 'serve', '--port', '0', '--data', o.dataDir, '--log-level', 'warn']
  if (kind === 'accord-memory') args.push('--store', 'memory')
  // One process unless a scenario asks for workers (a new directory would get one per core).
  if (!(o.serveArgs ?? []).includes('--workers')) args.push('--workers', '1')
  args.push(...o.serveArgs ?? [])
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  const timer = setTimeout(() => {
    child.kill('SIGKILL')
    reject(new Error(`accord did not start: ${err}`))
  }, 30_000)
  child.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000)
    if (process.env.BENCH_VERBOSE === '1') process.stderr.write(d)
  })
  let exited: string | undefined
  child.on('exit', (code, signal) => {
    clearTimeout(timer)
    exited = `exited with ${code ?? signal}`
    reject(new Error(`accord exited with ${code}: ${err}`))
  })
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
    const match = /accord serving on (ws:\/\/[^\s]+:(\d+))/.exec(out)
    if (match === null) return
    clearTimeout(timer)
    const port = Number(match[2])
    resolve({
      kind,
      url: match[1] as string,
      pid: child.pid as number,
      persisted: () => metric(port, 'accord_updates_persisted_total'),
      cpu: () => cpuSeconds(child.pid),
      stop: () => waitExit(child, 30_000),
      lastError: () => `${exited ?? 'running'}; stderr: ${err.slice(-600)}`
    })
  })
})

const startAccordIpc = async (kind: Kind, o: StartOptions): Promise<BenchServer> => {
  const rpc = await forkRpc<{ url: string, port: number }>(path.join(root, 'bench/server-entry.ts'), [JSON.stringify({
    dataDir: o.dataDir, memory: kind === 'accord-memory', evictionGraceMs: o.evictionGraceMs, serverOptions: o.serverOptions
  })], { execArgv: [...profileArgs(kind, o), '--expose-gc', '--import', 'tsx'] })
  return {
    kind,
    url: rpc.ready.url,
    pid: rpc.child.pid as number,
    persisted: () => metric(rpc.ready.port, 'accord_updates_persisted_total'),
    cpu: () => cpuSeconds(rpc.child.pid),
    heap: () => rpc.call<number>('heap'),
    loaded: () => rpc.call<number>('loaded'),
    snapshot: file => rpc.call<string>('snapshot', file),
    stop: () => rpc.stop(30_000)
  }
}

/**
 * The bare relay (bench/relay-entry.ts): forwards sync updates without a document or storage.
 * `persisted` counts the updates it forwarded.
 */
export const startRelay = async (): Promise<BenchServer> => {
  const rpc = await forkRpc<{ port: number }>(path.join(root, 'bench/relay-entry.ts'), [])
  return {
    kind: 'relay',
    url: `ws://127.0.0.1:${rpc.ready.port}`,
    pid: rpc.child.pid as number,
    persisted: () => rpc.call<number>('forwarded'),
    cpu: () => cpuSeconds(rpc.child.pid),
    stop: () => rpc.stop(10_000)
  }
}

export const startServer = (kind: Kind, o: StartOptions): Promise<BenchServer> => {
  if (kind === 'reference') return startReference(o)
  return o.heap === true ? startAccordIpc(kind, o) : startAccordCli(kind, o)
}
