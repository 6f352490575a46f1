/**
 * The machine a run happened on, and how busy other processes kept it: the whole machine's CPU
 * time (/proc/stat) minus this benchmark's own (this process plus its reaped children, from
 * /proc/self/stat), per scenario. Linux only; elsewhere the meter reports NaN.
 */
import { execFileSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { readFile } from 'node:fs/promises'
import { sleep } from './stats.ts'

export interface MachineInfo { cpu: string, cores: number, memoryGb: number, node: string, os: string, commit: string }

/** The checked-out commit, with `+changes` when server/ or src/ differ from it (read-only git). */
const commitOf = (): string => {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: import.meta.dirname, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'server', 'src'], { cwd: path.resolve(import.meta.dirname, '..'), encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head}+changes` : head
  } catch {
    return 'unknown'
  }
}

export const machineInfo = (): MachineInfo => ({
  cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
  cores: os.cpus().length,
  memoryGb: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
  node: process.version,
  os: `${os.type()} ${os.release()}`,
  commit: commitOf()
})

/** The hardware and software, without the commit (scenarios record their commits on their own). */
export const describeHardware = (m: MachineInfo): string => `${m.cores} x ${m.cpu}, ${m.memoryGb} GB RAM, Node ${m.node}, ${m.os}`
export const describeMachine = (m: MachineInfo): string => `${describeHardware(m)}; Accord at ${m.commit}`

const TICKS = 100

const machineSeconds = async (): Promise<{ busy: number, all: number }> => {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] as string
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    const idle = (f[3] ?? 0) + (f[4] ?? 0)
    const all = f.slice(0, 8).reduce((a, b) => a + b, 0)
    return { busy: (all - idle) / TICKS, all: all / TICKS }
  } catch {
    return { busy: Number.NaN, all: Number.NaN }
  }
}

/** This process and every child it has waited for (utime, stime, cutime, cstime). */
const ownSeconds = async (): Promise<number> => {
  try {
    const stat = await readFile('/proc/self/stat', 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number)
    return ((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) / TICKS
  } catch {
    return Number.NaN
  }
}

export interface Busy {
  /** Average cores busy with other processes while the scenario ran. */
  otherCores: number
  /** Average cores the benchmark itself used. */
  ownCores: number
}

/** Starts a meter; stop() must be called after every child of the measured span has exited. */
export const startMeter = async (): Promise<{ stop: () => Promise<Busy> }> => {
  const m0 = await machineSeconds()
  const o0 = await ownSeconds()
  const t0 = performance.now()
  return {
    stop: async () => {
      const m1 = await machineSeconds()
      const o1 = await ownSeconds()
      const wall = (performance.now() - t0) / 1000
      const own = (o1 - o0) / wall
      return { otherCores: Math.max(0, (m1.busy - m0.busy) / wall - own), ownCores: own }
    }
  }
}

/** Cores busy (all processes) over `ms`. */
export const busyCores = async (ms = 1000): Promise<number> => {
  const a = await machineSeconds()
  await sleep(ms)
  const b = await machineSeconds()
  return (b.busy - a.busy) / (ms / 1000)
}

/** Waits (up to maxMs) until fewer than `threshold` cores are busy; returns the last reading. */
export const waitQuiet = async (threshold: number, maxMs: number): Promise<number> => {
  const until = performance.now() + maxMs
  let busy = await busyCores()
  while (busy > threshold && performance.now() < until) {
    process.stderr.write(`  machine busy (${busy.toFixed(2)} cores used by other processes); waiting for it to calm down\n`)
    await sleep(5000)
    busy = await busyCores()
  }
  return busy
}
