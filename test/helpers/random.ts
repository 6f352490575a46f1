/**
 * A small seeded PRNG (mulberry32) for reproducible randomized tests: the seed comes from an
 * environment variable when set (to replay a failure), else from the clock, and is printed.
 */
export interface Random {
  readonly seed: number
  /** A float in [0, 1). */
  next: () => number
  /** An integer in [0, n). */
  int: (n: number) => number
  /** An integer in [min, max]. */
  range: (min: number, max: number) => number
  /** True with probability p. */
  chance: (p: number) => boolean
  pick: <T>(items: readonly T[]) => T
  /** Picks an item by weight: [[weight, item], ...]. */
  weighted: <T>(items: ReadonlyArray<readonly [number, T]>) => T
  bytes: (n: number) => Uint8Array
}

export const mulberry32 = (seed: number): (() => number) => {
  let s = seed | 0
  return () => {
    s = s + 0x6D2B79F5 | 0
    let t = Math.imul(s ^ s >>> 15, 1 | s)
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
    return ((t ^ t >>> 14) >>> 0) / 4294967296
  }
}

export const createRandom = (seed: number): Random => {
  const next = mulberry32(seed)
  const int = (n: number): number => Math.floor(next() * n)
  return {
    seed,
    next,
    int,
    range: (min, max) => min + int(max - min + 1),
    chance: p => next() < p,
    pick: items => items[int(items.length)] as (typeof items)[number],
    weighted: items => {
      const total = items.reduce((n, [w]) => n + w, 0)
      let r = next() * total
      for (const [w, item] of items) {
        r -= w
        if (r < 0) return item
      }
      return (items[items.length - 1] as readonly [number, (typeof items)[number][1]])[1]
    },
    bytes: n => {
      const out = new Uint8Array(n)
      for (let i = 0; i < n; i++) out[i] = int(256)
      return out
    }
  }
}

/** The seed from `envName` if set (a failure's seed, to reproduce it), else a fresh one; logged. */
export const seedFrom = (envName: string, what: string): number => {
  const fromEnv = process.env[envName]
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Date.now() % 1_000_000_000
  if (!Number.isSafeInteger(seed)) throw new Error(`${envName} must be an integer, got ${fromEnv}`)
  console.log(`${what}: seed ${seed} (reproduce with ${envName}=${seed})`)
  return seed
}
