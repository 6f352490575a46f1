/**
 * Prometheus metrics (prom-client), one registry per server: no process-global state, so many
 * servers in one process each report their own. Agent-state figures are derived from the
 * lifecycle records in persisted versions; server figures from the write path and the registry.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { readRuntime, type AgentStatus } from '../../src/model/runtime.ts'
import type { VersionRecord } from '../../src/model/schema.ts'
import type { Workflow } from '../sync/workflow.ts'

export interface WriteStats {
  /** Time from cutting the version to the store's acknowledgement. */
  seconds: number
  updates: number
  bytes: number
}

export interface MetricsSources {
  connections: () => number
  loaded: () => Workflow[]
  corrupt: () => number
  /** Cluster mode: how many bus partitions this server reads now. */
  busPartitions?: () => number
}

export interface Metrics {
  registry: Registry
  version: (wf: Workflow, record: VersionRecord, stats: WriteStats, conflicts: number) => void
  loaded: (seconds: number) => void
  snapshot: () => void
  corrupt: (workflowId: string) => void
  /** Cluster mode: updates sent to another server that writes their workflow. */
  forwarded: (updates: number) => void
  /** Cluster mode: a commit found another server had stored the version number first. */
  writerRace: () => void
  writerHandOff: () => void
  /** Cluster mode: a version read from a watched bus partition was skipped undecoded (another workflow's). */
  busSkipped: () => void
  /** Cluster mode: a version another server stored was received from the bus and decoded. */
  busReceived: () => void
}

const INACTIVE: ReadonlySet<AgentStatus> = new Set(['idle', 'archiving'])
const HISTORY_STEP = /^\/agents\/([^/]+)\/history\/(\d+)$/
const AGENT = /^\/agents\/([^/]+)$/

interface Step { from: AgentStatus, to: AgentStatus, at: number }

export const createMetrics = (sources: MetricsSources): Metrics => {
  const registry = new Registry()
  const transitions = new Counter({ name: 'agent_state_transitions_total', help: 'Agent lifecycle transitions', labelNames: ['from', 'to'], registers: [registry] })
  const duration = new Histogram({
    name: 'agent_state_duration_seconds', help: 'Time agents spent in a status before leaving it', labelNames: ['status'],
    buckets: [0.1, 1, 10, 60, 300, 1800, 3600], registers: [registry]
  })
  const errors = new Counter({ name: 'agent_state_errors_total', help: 'Transitions into the error status', registers: [registry] })
  const recoveries = new Counter({ name: 'agent_state_recovery_attempts_total', help: 'Transitions into the resuming status', registers: [registry] })
  const backups = new Counter({ name: 'agent_state_backups_total', help: 'Snapshots (checkpoints and backups) taken', registers: [registry] })
  new Gauge({
    name: 'active_agents', help: 'Agents in a working status (not idle or archiving) in loaded workflows', registers: [registry],
    collect () {
      let n = 0
      for (const wf of sources.loaded()) for (const a of Object.values(readRuntime(wf.doc).agents)) if (!INACTIVE.has(a.status)) n++
      this.set(n)
    }
  })
  new Gauge({ name: 'accord_connections', help: 'Open WebSocket connections', registers: [registry], collect () { this.set(sources.connections()) } })
  new Gauge({ name: 'accord_corrupt_workflows', help: 'Workflows currently refused because their stored data is damaged', registers: [registry], collect () { this.set(sources.corrupt()) } })
  new Gauge({ name: 'accord_workflows_loaded', help: 'Workflows held in memory', registers: [registry], collect () { this.set(sources.loaded().length) } })
  new Gauge({
    name: 'accord_workflow_size_bytes', help: 'Stored bytes per loaded workflow', labelNames: ['workflow'], registers: [registry],
    collect () {
      this.reset()
      for (const wf of sources.loaded()) this.set({ workflow: wf.id }, wf.storedBytes)
    }
  })
  const versions = new Counter({ name: 'accord_versions_persisted_total', help: 'Versions written', registers: [registry] })
  const updates = new Counter({ name: 'accord_updates_persisted_total', help: 'Yjs updates written', registers: [registry] })
  const bytes = new Counter({ name: 'accord_bytes_persisted_total', help: 'Bytes of Yjs updates written', registers: [registry] })
  const latency = new Histogram({
    name: 'accord_persist_latency_seconds', help: 'From a version being cut to the store acknowledging it',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry]
  })
  const conflicts = new Counter({ name: 'accord_conflicts_total', help: 'Concurrent same-key writes detected', registers: [registry] })
  const loads = new Histogram({
    name: 'accord_workflow_load_seconds', help: 'Time to load a workflow from the store',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry]
  })
  const forwarded = new Counter({ name: 'accord_forwarded_updates_total', help: 'Cluster: updates forwarded to the server that writes their workflow', registers: [registry] })
  const skipped = new Counter({ name: 'accord_bus_versions_skipped_total', help: 'Cluster: versions read from a bus partition this server watches, of a workflow it neither holds nor watches (skipped undecoded)', registers: [registry] })
  const received = new Counter({ name: 'accord_bus_versions_received_total', help: 'Cluster: versions other servers stored that this server received and decoded (workflows it holds or watches)', registers: [registry] })
  new Gauge({ name: 'accord_bus_partitions_read', help: 'Cluster: bus partitions this server reads now (those of workflows another server writes, or that a change stream or the list feed here watches)', registers: [registry], collect () { this.set(sources.busPartitions?.() ?? 0) } })
  const handOffs = new Counter({ name: 'accord_writer_handoffs_total', help: 'Cluster: writer leases this server handed to a server whose clients write the workflow (it had none)', registers: [registry] })
  const races = new Counter({ name: 'accord_writer_races_total', help: 'Cluster: commits that found the version number taken by another server (then renumbered)', registers: [registry] })
  new Gauge({ name: 'accord_workflows_written', help: 'Loaded workflows this server writes (holds the writer lease of, or the only server)', registers: [registry], collect () { this.set(sources.loaded().filter(wf => wf.isWriter).length) } })
  const corrupt = new Counter({ name: 'accord_corrupt_workflows_total', help: 'Workflow loads refused because stored data was damaged', labelNames: ['workflow'], registers: [registry] })

  const countStep = (wf: Workflow, agentId: string, step: Step): void => {
    transitions.inc({ from: step.from, to: step.to })
    if (step.to === 'error') errors.inc()
    if (step.to === 'resuming') recoveries.inc()
    // How long the agent was in `from`: since the step before this one.
    const history = readRuntime(wf.doc).agents[agentId]?.history ?? []
    const i = history.findIndex(h => h.at === step.at && h.to === step.to)
    const previous = i > 0 ? history[i - 1] : undefined
    if (previous !== undefined) duration.observe({ status: step.from }, Math.max(0, step.at - previous.at) / 1000)
  }

  return {
    registry,
    version (wf, record, stats, conflictCount) {
      versions.inc()
      updates.inc(stats.updates)
      bytes.inc(stats.bytes)
      latency.observe(stats.seconds)
      if (conflictCount > 0) conflicts.inc(conflictCount)
      for (const op of record.runtimeChanges ?? []) {
        if (op.op !== 'add' && op.op !== 'replace') continue
        const step = HISTORY_STEP.exec(op.path)
        if (step !== null) {
          countStep(wf, step[1] as string, op.value as Step)
          continue
        }
        const agent = AGENT.exec(op.path)
        const history = (op.value as { history?: Step[] } | undefined)?.history
        if (agent !== null && history !== undefined && history.length > 0) countStep(wf, agent[1] as string, history[history.length - 1] as Step)
      }
    },
    loaded: seconds => { loads.observe(seconds) },
    snapshot: () => { backups.inc() },
    corrupt: workflowId => { corrupt.inc({ workflow: workflowId }) },
    forwarded: n => { forwarded.inc(n) },
    writerRace: () => { races.inc() },
    writerHandOff: () => { handOffs.inc() },
    busSkipped: () => { skipped.inc() },
    busReceived: () => { received.inc() }
  }
}
