/**
 * Request/response over a child's IPC channel, both sides. The parent forks a child and calls
 * named commands; the child answers with `serveRpc`. A child announces itself with one
 * `{ ready: info }` message. Every call has a timeout, so no loop waits forever on a child.
 */
import { fork, type ChildProcess } from 'node:child_process'

interface Reply { id: number, ok: boolean, result?: unknown, error?: string }

export interface RpcChild<Ready> {
  child: ChildProcess
  ready: Ready
  call: <T = unknown>(cmd: string, args?: unknown, timeoutMs?: number) => Promise<T>
  /** Asks the child to stop (SIGTERM), SIGKILLs it after `graceMs`; resolves once it exited. */
  stop: (graceMs?: number) => Promise<void>
}

export const waitExit = (child: ChildProcess, graceMs = 20_000): Promise<void> => new Promise(resolve => {
  if (child.exitCode !== null || child.signalCode !== null) {
    resolve()
    return
  }
  const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  child.once('exit', () => {
    clearTimeout(timer)
    resolve()
  })
  child.kill('SIGTERM')
})

export const forkRpc = <Ready>(file: string, args: string[], options: { execArgv?: string[], env?: NodeJS.ProcessEnv, readyTimeoutMs?: number } = {}): Promise<RpcChild<Ready>> =>
  new Promise((resolve, reject) => {
    const child = fork(file, args, {
      execArgv: options.execArgv ?? ['--import', 'tsx'],
      env: { ...process.env, ...options.env },
      stdio: ['ignore', process.env.BENCH_VERBOSE === '1' ? 'inherit' : 'ignore', 'pipe', 'ipc']
    })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000)
      if (process.env.BENCH_VERBOSE === '1') process.stderr.write(d)
    })
    const pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
    let nextId = 1
    const readyTimer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${file} did not start within ${options.readyTimeoutMs ?? 30_000} ms: ${stderr}`))
    }, options.readyTimeoutMs ?? 30_000)
    child.on('exit', code => {
      clearTimeout(readyTimer)
      reject(new Error(`${file} exited with ${code} before it was ready: ${stderr}`))
      for (const p of pending.values()) {
        clearTimeout(p.timer)
        p.reject(new Error(`${file} exited (${code}) during a call: ${stderr}`))
      }
      pending.clear()
    })
    child.on('message', (message: { ready?: Ready } & Partial<Reply>) => {
      if (message.ready !== undefined) {
        clearTimeout(readyTimer)
        resolve({
          child,
          ready: message.ready,
          call: <T>(cmd: string, callArgs?: unknown, timeoutMs = 120_000): Promise<T> => new Promise((res, rej) => {
            const id = nextId++
            const timer = setTimeout(() => {
              pending.delete(id)
              rej(new Error(`${file}: ${cmd} timed out after ${timeoutMs} ms`))
            }, timeoutMs)
            pending.set(id, { resolve: res as (v: unknown) => void, reject: rej, timer })
            child.send({ id, cmd, args: callArgs })
          }),
          stop: graceMs => waitExit(child, graceMs)
        })
        return
      }
      const p = message.id === undefined ? undefined : pending.get(message.id)
      if (p === undefined) return
      pending.delete(message.id as number)
      clearTimeout(p.timer)
      if (message.ok === true) p.resolve(message.result)
      else p.reject(new Error(message.error ?? 'child call failed'))
    })
  })

type Handler = (args: any) => unknown

/** The child side: answers calls with `handlers`, then announces `ready`. */
export const serveRpc = (handlers: Record<string, Handler>, ready: unknown): void => {
  const send = (m: unknown): void => { process.send?.(m) }
  process.on('message', (message: { id: number, cmd: string, args?: unknown }) => {
    const handler = handlers[message.cmd]
    if (handler === undefined) {
      send({ id: message.id, ok: false, error: `unknown command ${message.cmd}` })
      return
    }
    Promise.resolve().then(() => handler(message.args)).then(
      result => { send({ id: message.id, ok: true, result }) },
      (err: Error) => { send({ id: message.id, ok: false, error: err.stack ?? err.message }) }
    )
  })
  // The parent going away ends the child too.
  process.on('disconnect', () => { process.exit(0) })
  send({ ready })
}

/** Collects garbage until heapUsed settles; needs --expose-gc. */
export const settledHeap = async (): Promise<number> => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  let last = Number.POSITIVE_INFINITY
  for (let i = 0; i < 6; i++) {
    gc()
    await new Promise(resolve => setTimeout(resolve, 20))
    const used = process.memoryUsage().heapUsed
    if (Math.abs(last - used) < 64 * 1024) return used
    last = used
  }
  return last
}
