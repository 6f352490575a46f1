/**
 * A write storm for crash and failover tests: every agent writes a new key (`<agent>-<n>`) every
 * few milliseconds, online or not, and the storm knows exactly which state they must end with.
 */
import type { WorkflowHandle } from '../../src/node/index.ts'

export interface Storm {
  stop: () => void
  /** Every key each agent wrote so far, with its value. */
  expected: () => Record<string, number>
}

export const startStorm = (agents: Array<Pick<WorkflowHandle, 'agentId' | 'update'>>, everyMs: number): Storm => {
  const made = agents.map(() => 0)
  const timer = setInterval(() => {
    agents.forEach((agent, i) => {
      const n = made[i] as number
      agent.update(d => { d[`${agent.agentId}-${n}`] = n })
      made[i] = n + 1
    })
  }, everyMs)
  return {
    stop: () => { clearInterval(timer) },
    expected: () => {
      const out: Record<string, number> = {}
      agents.forEach((agent, i) => { for (let n = 0; n < (made[i] as number); n++) out[`${agent.agentId}-${n}`] = n })
      return out
    }
  }
}
