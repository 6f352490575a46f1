/**
 * Which worker of `accord serve --workers N` owns a workflow: a stable hash (32-bit FNV-1a) of
 * the workflow's shard key, modulo N. Stable across restarts, processes and machines, so every
 * connection and request of one workflow meets in one worker, and a data directory's shards stay
 * valid for as long as N does (another N needs `accord reshard`).
 *
 *   shardOf('build-42', 4)            // 0..3, the same every time
 *   shardOf('build-42.fork-1a2b3c4d5e', 4) === shardOf('build-42', 4)
 */

/**
 * A fork is named `<parent id, first 100 chars>.fork-<hex>` (server/history/history.ts): it
 * shares its parent's shard key, so fork, promote and discard find both in one worker's store.
 */
export const shardKey = (workflowId: string): string => (workflowId.split('.fork-')[0] ?? workflowId).slice(0, 100)

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** FNV-1a over the UTF-8 bytes: cheap, well spread for short ids, and the same on every platform. */
const fnv1a = (text: string): number => {
  let hash = FNV_OFFSET
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte
    hash = Math.imul(hash, FNV_PRIME) >>> 0
  }
  return hash
}

export const shardOf = (workflowId: string, workers: number): number => workers <= 1 ? 0 : fnv1a(shardKey(workflowId)) % workers
