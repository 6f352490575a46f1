/** Polls `condition` until it returns truthy; throws with `what` after `timeoutMs`. Never a fixed sleep. */
export const waitFor = async <T>(
  condition: () => T | Promise<T>,
  { timeoutMs = 15_000, what = 'condition', intervalMs = 10 }: { timeoutMs?: number, what?: string, intervalMs?: number } = {}
): Promise<NonNullable<T>> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value !== undefined && value !== null && value !== false) return value as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? `: ${String(last)}` : ''}`)
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

/** Waits until every getter returns the same JSON; returns that JSON. */
export const waitForConvergence = async (getters: Array<() => unknown>, timeoutMs = 15_000): Promise<unknown> => {
  let snapshot: string[] = []
  try {
    await waitFor(() => {
      snapshot = getters.map(g => JSON.stringify(g()))
      return snapshot.every(s => s === snapshot[0])
    }, { timeoutMs, what: 'convergence' })
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${snapshot.join('\n')}`)
  }
  return JSON.parse(snapshot[0] as string)
}
