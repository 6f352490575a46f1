/**
 * Retention: versions beyond the hot window (`maxVersions` newest, or older than
 * `archiveAfterDays`) move into compressed archive chunks, one keyframe interval at a time,
 * where stateAt/history still read them. Snapshot pruning and idle-workflow deletion run in the
 * periodic sweep. None of this touches a live document.
 */
import type { Store } from './store.ts'

export interface RetentionPolicy {
  /** Newest versions kept hot per workflow (default 100). */
  maxVersions: number
  /** Versions older than this many days are archived even inside the hot window (default 30). */
  archiveAfterDays: number
}

const DAY = 24 * 60 * 60 * 1000

/** Archives every whole keyframe interval that fell out of the hot window. Returns chunks written. */
export const archiveOldVersions = async (store: Store, id: string, policy: RetentionPolicy, now = Date.now()): Promise<number> => {
  const meta = await store.getMeta(id)
  if (meta === null) return 0
  let from = await store.archivedThrough(id)
  let chunks = 0
  for (const to of await store.keyframes(id)) {
    if (to <= from) continue
    let old = to <= meta.head - policy.maxVersions
    if (!old && to < meta.head) {
      const record = await store.version(id, to)
      old = record !== null && record.timestamp < now - policy.archiveAfterDays * DAY
    }
    if (!old) break
    await store.archive(id, from, to)
    from = to
    chunks++
  }
  return chunks
}
