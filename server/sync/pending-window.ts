/**
 * A workflow's flush window: the updates applied to its document but not cut into a version
 * yet, each with its origin, description and meta, ops and conflicts (a Pending entry). An update
 * applied through `applyAs` gets the description given there, and `applyAs` returns the entry it
 * became (for the write checks, or a forwarded update's violations).
 *
 *   const entry = window.applyAs(peer, described, () => { Y.applyUpdate(doc, update, peer) })
 *   doc.on('update', (update, origin) => { window.push(update, origin, changes.take()) })
 *   const batch = window.take()                 // what the next version holds
 */
import type { Described } from './contracts.ts'
import type { Changes } from './tx-changes.ts'
import type { Pending } from './version-cut.ts'

interface Applying { origin: unknown, described: Described | undefined, entry: Pending | undefined }

export class PendingWindow {
  private entries: Pending[] = []
  /** The update being applied by applyAs: its origin, description, and the entry it became. */
  private applying: Applying | null = null

  get length (): number { return this.entries.length }

  /** Runs `fn` (which applies one update as `origin`) and returns the entry it became, if any. */
  applyAs (origin: unknown, described: Described | undefined, fn: () => void): Pending | undefined {
    const applying: Applying = { origin, described, entry: undefined }
    const outer = this.applying
    this.applying = applying
    try {
      fn()
    } finally {
      this.applying = outer
    }
    return applying.entry
  }

  /** Adds an update the document emitted (described if `applyAs` is applying it). */
  push (update: Uint8Array, origin: unknown, { ops, runtimeOps, conflicts }: Changes): Pending {
    const applying = this.applying !== null && this.applying.origin === origin ? this.applying : null
    const described = applying?.described
    const entry: Pending = { update, origin, ops, runtimeOps, conflicts, violations: [], description: described?.description, meta: described?.meta }
    this.entries.push(entry)
    if (applying !== null) applying.entry = entry
    return entry
  }

  /** Takes every entry (the window starts empty again). */
  take (): Pending[] {
    const batch = this.entries
    this.entries = []
    return batch
  }

  /** Drops every entry (the workflow failed or was destroyed: nothing more is stored). */
  clear (): void {
    this.entries = []
  }

  /** Puts entries taken earlier (and never stored) back ahead of the current ones. */
  unshift (batch: Pending[]): void {
    this.entries = batch.concat(this.entries)
  }
}
