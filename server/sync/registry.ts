/**
 * Which workflows are in memory. Loaded lazily on first use, shared by every connection, and
 * flushed and evicted `graceMs` after the last one leaves. A failed load or write removes the
 * entry and releases the half-built workflow, so memory never grows with workflows ever touched.
 */
import type { CloseCode } from '../../src/model/close-codes.ts'
import { LimitExceededError } from '../../src/model/errors.ts'
import { Workflow, type WorkflowOptions } from './workflow.ts'

export type RegistryOptions = Omit<WorkflowOptions, 'onFailure'> & {
  graceMs: number
  /** Cap on workflows in memory: idle ones go first (least recently released); else loads are refused. */
  maxLoaded: number
  /** Called after each load, with its duration, or with the error that stopped it. */
  onLoad?: (workflowId: string, seconds: number, error?: Error) => void
}

interface Entry {
  id: string
  promise: Promise<Workflow>
  workflow: Workflow | null
  refs: number
  timer: ReturnType<typeof setTimeout> | null
  closing: Promise<void> | null
}

export interface Registry {
  /** Loads (or reuses) a workflow and holds it until `release`. */
  acquire: (id: string) => Promise<Workflow>
  release: (workflow: Workflow) => void
  /** Runs `fn` with the workflow loaded and held, and releases it after, whatever `fn` does. */
  with: <T>(id: string, fn: (workflow: Workflow) => Promise<T>) => Promise<T>
  /** Ids of the workflows currently in memory (loading, loaded or being evicted). */
  loaded: () => string[]
  /**
   * Unloads a workflow, closing its peers with `code`, then runs `then` (the deletion) before any
   * new load of the id may start.
   */
  drop: (id: string, code: CloseCode, then?: () => Promise<void>) => Promise<void>
  /** The loaded workflow, if it is in memory and ready. */
  get: (id: string) => Workflow | undefined
  /** Every loaded, ready workflow. */
  all: () => Workflow[]
  /** Flushes and releases every workflow. */
  close: () => Promise<void>
}

export const createRegistry = (opts: RegistryOptions): Registry => {
  const entries = new Map<string, Entry>()

  const remove = (entry: Entry): void => {
    if (entries.get(entry.id) === entry) entries.delete(entry.id)
  }

  const evict = (entry: Entry): void => {
    entry.timer = null
    if (entry.refs > 0 || entry.closing !== null) return
    const workflow = entry.workflow
    if (workflow === null) return
    entry.closing = workflow.close()
      .catch(err => { opts.log.error('evicting workflow failed', { workflowId: entry.id, error: (err as Error).message }) })
      .finally(() => { remove(entry) })
  }

  const onFailure = (workflow: Workflow): void => {
    const entry = entries.get(workflow.id)
    if (entry === undefined || entry.workflow !== workflow) {
      workflow.destroy()
      return
    }
    if (entry.timer !== null) clearTimeout(entry.timer)
    entry.closing = Promise.resolve(workflow.destroy()).finally(() => { remove(entry) })
  }

  const create = (id: string): Entry => {
    const entry: Entry = { id, promise: Promise.resolve(null as never), workflow: null, refs: 0, timer: null, closing: null }
    const started = performance.now()
    entry.promise = Workflow.load(id, { ...opts, onFailure }).then(
      workflow => {
        opts.onLoad?.(id, (performance.now() - started) / 1000)
        entry.workflow = workflow
        return workflow
      },
      err => {
        opts.log.error('loading workflow failed', { workflowId: id, error: (err as Error).message, code: (err as { code?: string }).code })
        opts.onLoad?.(id, (performance.now() - started) / 1000, err as Error)
        remove(entry)
        throw err
      }
    )
    entries.set(id, entry)
    return entry
  }

  /** Makes room for one more workflow: evicts the least recently released idle one, or refuses. */
  const makeRoom = (): void => {
    if (entries.size < opts.maxLoaded) return // entries include closing ones: a cheap upper bound
    let live = 0
    for (const e of entries.values()) if (e.closing === null) live++
    if (live < opts.maxLoaded) return
    // Map order is release order for idle entries (release re-inserts), so the first is the LRU.
    for (const e of entries.values()) {
      if (e.refs === 0 && e.closing === null && e.workflow !== null) {
        if (e.timer !== null) clearTimeout(e.timer)
        evict(e)
        return
      }
    }
    throw new LimitExceededError('maxLoadedWorkflows', `the server holds its limit of ${opts.maxLoaded} workflows in memory, all in use; retry later`)
  }

  const acquire = async (id: string): Promise<Workflow> => {
    for (;;) {
      const existing = entries.get(id)
      if (existing?.closing != null) {
        await existing.closing
        continue
      }
      if (existing === undefined) makeRoom()
      const entry = existing ?? create(id)
      entry.refs++
      if (entry.timer !== null) {
        clearTimeout(entry.timer)
        entry.timer = null
      }
      try {
        return await entry.promise
      } catch (err) {
        entry.refs--
        throw err
      }
    }
  }

  const release = (workflow: Workflow): void => {
    const entry = entries.get(workflow.id)
    if (entry === undefined || entry.workflow !== workflow) return
    entry.refs--
    if (entry.refs > 0 || entry.closing !== null) return
    entries.delete(entry.id)
    entries.set(entry.id, entry)
    entry.timer = setTimeout(() => { evict(entry) }, opts.graceMs)
    entry.timer.unref()
  }

  const drop = async (id: string, code: CloseCode, then?: () => Promise<void>): Promise<void> => {
    for (;;) {
      const entry = entries.get(id)
      if (entry?.closing != null) {
        await entry.closing
        continue
      }
      if (entry?.timer != null) clearTimeout(entry.timer)
      const workflow = entry === undefined ? null : await entry.promise.catch(() => null)
      if (entries.get(id) !== entry || entry?.closing != null) continue // changed while we waited
      // The entry (or a placeholder when the workflow is not loaded) stays until `then` (the
      // deletion) is done, so a load racing with it waits instead of reading what is deleted.
      const held: Entry = entry ?? { id, promise: Promise.resolve(null as never), workflow: null, refs: 0, timer: null, closing: null }
      held.timer = null
      const run = (async () => {
        if (workflow !== null) {
          await workflow.whenFlushed().catch(() => {})
          for (const peer of Array.from(workflow.peers.keys())) peer.close(code)
          workflow.destroy()
        }
        await then?.()
      })()
      held.closing = run.catch(() => {}).finally(() => { remove(held) })
      entries.set(id, held)
      await run
      return
    }
  }

  const get = (id: string): Workflow | undefined => {
    const entry = entries.get(id)
    return entry?.closing === null && entry.workflow !== null ? entry.workflow : undefined
  }

  const close = async (): Promise<void> => {
    const all = Array.from(entries.values())
    await Promise.all(all.map(async entry => {
      if (entry.timer !== null) clearTimeout(entry.timer)
      entry.timer = null
      if (entry.closing !== null) return entry.closing
      const workflow = await entry.promise.catch(() => null)
      if (workflow !== null) await workflow.close()
      remove(entry)
    }))
  }

  const all = (): Workflow[] => Array.from(entries.values()).flatMap(e => e.closing === null && e.workflow !== null ? [e.workflow] : [])

  const withWorkflow = async <T>(id: string, fn: (workflow: Workflow) => Promise<T>): Promise<T> => {
    const workflow = await acquire(id)
    try {
      return await fn(workflow)
    } finally {
      release(workflow)
    }
  }

  return { acquire, release, with: withWorkflow, loaded: () => Array.from(entries.keys()), drop, get, all, close }
}
