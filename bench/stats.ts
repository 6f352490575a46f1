/** Small statistics helpers shared by the benchmark processes. */

/** Nearest-rank percentile (p in 0..1) of unsorted samples; NaN when empty. */
export const percentile = (xs: ArrayLike<number>, p: number): number => {
  if (xs.length === 0) return Number.NaN
  const sorted = Float64Array.from(xs as ArrayLike<number>).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number
}

export interface Spread { median: number, min: number, max: number, runs: number[] }

/** Median over runs, with min and max. */
export const spread = (runs: number[]): Spread => {
  const ok = runs.filter(x => Number.isFinite(x))
  if (ok.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs }
  const sorted = [...ok].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, runs }
}

/** Summary of one sample set. */
export interface Latency { count: number, p50: number, p99: number, max: number }

export const latency = (xs: ArrayLike<number>): Latency => {
  let max = Number.NaN
  for (let i = 0; i < xs.length; i++) if (!(xs[i] as number <= max)) max = xs[i] as number
  return { count: xs.length, p50: percentile(xs, 0.5), p99: percentile(xs, 0.99), max }
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** CPU seconds (user + system, all threads) a process has used so far, from /proc (Linux); NaN elsewhere. */
export const cpuSeconds = async (pid: number | undefined): Promise<number> => {
  if (pid === undefined) return Number.NaN
  try {
    const { readFile } = await import('node:fs/promises')
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** CPU seconds so far of every process whose command name is `comm`, by pid. */
export const cpuByComm = async (comm: string): Promise<Map<number, number>> => {
  const fs = await import('node:fs/promises')
  const out = new Map<number, number>()
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const name = await fs.readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '') // the process left meanwhile
    if (name.trim() !== comm) continue
    const seconds = await cpuSeconds(Number(entry))
    if (!Number.isNaN(seconds)) out.set(Number(entry), seconds)
  }
  return out
}

/** CPU used between two readings; a process that started in between counts in full. */
export const used = (a: Map<number, number>, b: Map<number, number>): number => {
  let sum = 0
  for (const [pid, s] of b) sum += s - (a.get(pid) ?? 0)
  return sum
}
