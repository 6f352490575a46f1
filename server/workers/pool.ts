/**
 * The primary's worker processes: starts N workers (each this same program with its identity in
 * the environment), waits until every one is ready, restarts one that dies (SIGKILL, a crash)
 * with a backoff, hands it WebSocket sockets, and stops them all on close.
 *
 *   const pool = createWorkerPool({ workers: 4, dataDirs, log })
 *   await pool.start()               // WorkerStartError: the first worker's refusal, verbatim
 *   pool.handOff(2, socket, head)    // false while worker 2 is restarting
 *   const { flushed } = await pool.stop()
 */
import { fork, type ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { AccordError } from '../../src/model/errors.ts'
import type { Logger } from '../ops/log.ts'
import { FromWorkerSchema, WORKER_ENV, type ToWorker, type WorkerIdentity } from './messages.ts'

/** A worker refused to start (a locked or unwritable store, an unreachable database, ...). */
export class WorkerStartError extends AccordError {
  readonly exitCode: number
  constructor (index: number, message: string, exitCode: number) {
    super('WORKFLOW_UNAVAILABLE', `worker ${index} did not start: ${message}`)
    this.name = 'WorkerStartError'
    this.exitCode = exitCode
  }
}

export type WorkerState = 'starting' | 'ready' | 'restarting' | 'stopped'

export interface WorkerPoolOptions {
  workers: number
  /** Each worker's LevelDB directory, or null when they share one store (PostgreSQL, memory). */
  dataDirs: Array<string | null>
  log: Logger
  /** Restart backoff bounds (default 100 ms doubling to 5 s, reset after 30 s of uptime). */
  restartDelayMs?: { min: number, max: number }
}

export interface WorkerPool {
  start: () => Promise<void>
  socketPath: (index: number) => string
  state: (index: number) => WorkerState
  /** Index, pid and state of every worker (readiness, tests, the bench). */
  describe: () => Array<{ index: number, pid: number | null, state: WorkerState, restarts: number }>
  /** Gives worker `index` an accepted socket and the bytes read from it; false if it is not ready. */
  handOff: (index: number, socket: Socket, head: Buffer) => boolean
  stop: () => Promise<{ flushed: number }>
}

interface Slot {
  index: number
  child: ChildProcess | null
  state: WorkerState
  restarts: number
  startedAt: number
  delayMs: number
  flushed: number
}

export const createWorkerPool = (o: WorkerPoolOptions): WorkerPool => {
  // Private to this primary: other users cannot reach the workers around the primary's routing.
  const socketDir = mkdtempSync(path.join(os.tmpdir(), 'accord-workers-'))
  const socketPath = (i: number): string => path.join(socketDir, `worker-${i}.sock`)
  const { min, max } = o.restartDelayMs ?? { min: 100, max: 5000 }
  const slots: Slot[] = Array.from({ length: o.workers }, (_, index) => ({ index, child: null, state: 'starting', restarts: 0, startedAt: 0, delayMs: min, flushed: 0 }))
  let stopping = false
  const timers = new Set<ReturnType<typeof setTimeout>>()

  /** Starts slot's process; resolves when it is ready, rejects with its refusal. */
  const spawn = (slot: Slot): Promise<void> => new Promise((resolve, reject) => {
    const identity: WorkerIdentity = { socketPath: socketPath(slot.index), dataDir: o.dataDirs[slot.index] ?? null }
    rmSync(identity.socketPath, { force: true })
    const child = fork(process.argv[1] as string, process.argv.slice(2), {
      env: { ...process.env, [WORKER_ENV]: JSON.stringify(identity) },
      execArgv: process.execArgv,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc']
    })
    slot.child = child
    slot.startedAt = Date.now()
    // A send to a worker that just died fails with EPIPE: its exit is what counts, handled below.
    child.on('error', err => { o.log.debug?.('worker channel error', { worker: slot.index, error: err.message }) })
    let settled = false
    child.on('message', raw => {
      const message = FromWorkerSchema.safeParse(raw)
      if (!message.success) return
      const m = message.data
      if (m.type === 'ready') {
        slot.state = 'ready'
        settled = true
        resolve()
      } else if (m.type === 'failed') {
        settled = true
        reject(new WorkerStartError(slot.index, m.message, m.exitCode))
      } else slot.flushed = m.flushed
    })
    child.on('exit', (code, signal) => {
      if (slot.child === child) slot.child = null
      if (!settled) {
        settled = true
        reject(new WorkerStartError(slot.index, `exited with ${signal ?? code ?? 'nothing'}`, 1))
        return
      }
      if (stopping) {
        slot.state = 'stopped'
        return
      }
      // A worker that failed to start is retried by restart()'s own rejection handler.
      if (slot.state !== 'ready') return
      o.log.warn('worker exited; restarting it', { worker: slot.index, code, signal })
      restart(slot)
    })
  })

  const restart = (slot: Slot): void => {
    slot.state = 'restarting'
    if (Date.now() - slot.startedAt > 30_000) slot.delayMs = min
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (stopping) return
      slot.restarts++
      spawn(slot).then(() => {
        o.log.info('worker restarted', { worker: slot.index, restarts: slot.restarts })
      }, (err: unknown) => {
        o.log.error('worker restart failed', { worker: slot.index, error: (err as Error).message })
        slot.delayMs = Math.min(max, slot.delayMs * 2)
        if (!stopping) restart(slot)
      })
    }, slot.delayMs)
    timers.add(timer)
  }

  const send = (slot: Slot, message: ToWorker, handle?: Socket): boolean => {
    const child = slot.child
    if (child === null || !child.connected) return false
    try {
      // false only means the channel is backed up: the message is still queued.
      const ignore = (): void => {}
      if (handle === undefined) child.send(message, ignore)
      else child.send(message, handle, ignore)
      return true
    } catch {
      return false
    }
  }

  const waitExit = (child: ChildProcess): Promise<void> => new Promise(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => { resolve() })
  })

  const stop = async (): Promise<{ flushed: number }> => {
    stopping = true
    for (const t of timers) clearTimeout(t)
    const children = slots.map(s => s.child).filter((c): c is ChildProcess => c !== null)
    for (const slot of slots) send(slot, { type: 'stop' })
    await Promise.all(children.map(waitExit))
    rmSync(socketDir, { recursive: true, force: true })
    return { flushed: slots.reduce((n, s) => n + s.flushed, 0) }
  }

  return {
    start: async () => {
      // All at once: N stores open in parallel; the first refusal is the one reported.
      const started = await Promise.allSettled(slots.map(spawn))
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed !== undefined) {
        await stop()
        throw failed.reason
      }
    },
    socketPath,
    state: i => slots[i]?.state ?? 'stopped',
    describe: () => slots.map(s => ({ index: s.index, pid: s.child?.pid ?? null, state: s.state, restarts: s.restarts })),
    handOff: (i, socket, head) => {
      const slot = slots[i]
      if (slot === undefined || slot.state !== 'ready') return false
      return send(slot, { type: 'upgrade', head: head.toString('base64') }, socket)
    },
    stop
  }
}
