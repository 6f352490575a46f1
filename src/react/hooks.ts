/**
 * React hooks over the SDK's public API.
 *
 *   const { workflow, state, status, error } = useWorkflow('release-42')
 *   const tasks = useWorkflowState(workflow, s => s.tasks)   // re-renders only when tasks change
 *
 * `useWorkflow` re-renders only when a field the component reads (workflow, state, status,
 * error) changed. It opens the shared handle in an effect (never during render, so server rendering
 * and StrictMode's double render open nothing) and releases it on unmount. `useWorkflowState`
 * subscribes with `useSyncExternalStore`; the SDK's snapshots share unchanged subtrees, so a
 * selected object or array is `===` its previous value unless something under it changed.
 */
import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react'
import type { z } from 'zod'
import type { JsonObject, StateOf, WorkflowHandle } from '../sdk.ts'
import { IDLE_SNAPSHOT, type UseWorkflowOptions, type WorkflowEntry, type WorkflowLease, type WorkflowSnapshot } from './registry.ts'
import { useWorkflowRegistry } from './provider.ts'

const noSubscribe = (): (() => void) => () => {}
const idle = (): WorkflowSnapshot<any> => IDLE_SNAPSHOT

/**
 * The shared handle of workflow `id` (options on top of the registry's defaults) and its
 * state, status and error; re-renders when a field it read changed (reading `state` means every
 * change of the state). Pass `null` to open nothing.
 * Handles are shared per id + url + agentId: the first component's other options win.
 */
export const useWorkflow = <S extends z.ZodType | undefined = undefined>(
  id: string | null,
  options?: UseWorkflowOptions<S>
): WorkflowSnapshot<StateOf<S>> => {
  const registry = useWorkflowRegistry()
  const key = id === null ? null : registry.keyOf(id, options)
  const [lease, setLease] = useState<WorkflowLease | null>(null)
  // The latest options without making their (per-render) identity a reason to reopen.
  const latestOptions = useRef(options)
  latestOptions.current = options
  // biome-ignore lint/correctness/useExhaustiveDependencies: options are read through a ref, so a new options object each render does not reopen the handle
  useEffect(() => {
    if (id === null) return
    const held = registry.acquire(id, latestOptions.current)
    setLease(held)
    return () => { held.release() }
  }, [registry, key])
  const entry = lease !== null && lease.entry.key === key ? lease.entry : null
  // Like SWR: the result's fields are getters that record which ones this component reads, and
  // only a change of those re-renders it, so `const { workflow } = useWorkflow(id)` plus
  // `useWorkflowState(workflow, s => s.tasks)` re-renders on changes of tasks alone.
  const used = useRef(new Set<keyof WorkflowSnapshot>())
  const last = useRef<{ entry: WorkflowEntry | null, full: WorkflowSnapshot<any>, view: WorkflowSnapshot<any> } | null>(null)
  const latest = (): WorkflowSnapshot<any> => entry?.getSnapshot() ?? IDLE_SNAPSHOT
  const view = (): WorkflowSnapshot<any> => {
    const full = latest()
    const prev = last.current
    if (prev !== null && prev.entry === entry) {
      if (prev.full === full) return prev.view
      let changed = false
      for (const field of used.current) if (prev.full[field] !== full[field]) changed = true
      if (!changed) {
        last.current = { entry, full, view: prev.view }
        return prev.view
      }
    }
    const track = (field: keyof WorkflowSnapshot) => ({
      enumerable: true,
      get: () => {
        used.current.add(field)
        return latest()[field]
      }
    })
    const next = Object.defineProperties({}, {
      workflow: track('workflow'), state: track('state'), status: track('status'), error: track('error')
    }) as WorkflowSnapshot<any>
    last.current = { entry, full, view: next }
    return next
  }
  return useSyncExternalStore(entry?.subscribe ?? noSubscribe, view, idle)
}

/**
 * `selector(workflow.state)`, re-rendering only when it returns something new (`isEqual`,
 * default `Object.is`, against the last result). Undefined while `workflow` is null.
 */
export const useWorkflowState = <T = JsonObject, R = unknown>(
  workflow: WorkflowHandle<T> | null | undefined,
  selector: (state: T) => R,
  isEqual: (a: R, b: R) => boolean = Object.is
): R | undefined => {
  // Remembers the last state and selection so an unchanged state never runs the selector, and
  // an equal selection keeps its identity (getSnapshot must return the same value until a change).
  const memo = useRef<{ workflow: WorkflowHandle<T>, state: T, selector: (state: T) => R, selected: R } | null>(null)
  const subscribe = useMemo(
    () => workflow == null ? noSubscribe : (listener: () => void) => workflow.subscribe(() => { listener() }),
    [workflow]
  )
  const select = (): R | undefined => {
    if (workflow == null) return undefined
    const state = workflow.state
    const last = memo.current
    if (last !== null && last.workflow === workflow && last.state === state && last.selector === selector) return last.selected
    const next = selector(state)
    const selected = last !== null && last.workflow === workflow && isEqual(last.selected, next) ? last.selected : next
    memo.current = { workflow, state, selector, selected }
    return selected
  }
  return useSyncExternalStore(subscribe, select, () => undefined)
}
