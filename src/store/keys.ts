/**
 * The storage key layout, in one place. Keys are UTF-8 strings ordered bytewise; numbers are
 * 16 lowercase hex digits so that lexicographic order is numeric order. Workflow ids never
 * contain '!' (see src/workflow-id.ts), so every prefix below is unambiguous.
 *
 *   m!<workflowId>                 -> WorkflowMeta (JSON): head version, newest keyframe, ...
 *   w!<workflowId>!kf!<v>          -> full document state after version v (compressed)
 *   w!<workflowId>!log!<v>         -> the Yjs updates of version v (a list), stored before broadcast
 *   w!<workflowId>!ver!<v>         -> VersionRecord (JSON)
 *   w!<workflowId>!arch!<v>        -> archive chunk ending at version v: the keyframe its range
 *                                     starts from plus the records and updates of the range (compressed)
 *   w!<workflowId>!snap!<id>       -> SnapshotRecord (JSON)
 *   w!<workflowId>!conf!<n>        -> ConflictRecord (JSON)
 *   w!<workflowId>!viol!<n>        -> ViolationRecord (JSON)
 *
 * Loading a workflow = the newest keyframe + the log entries after it. A keyframe is written every
 * `keyframeEvery` versions in the same atomic batch as that version. Versions beyond the hot
 * window move, one keyframe interval at a time, into archive chunks. Every value is framed with a
 * format byte and a CRC-32 (see frame.ts).
 */

const NUM_WIDTH = 16
/** Sorts after every kind name and hex digit used below: the end of a range. */
const HIGH = '~'

export type Kind = 'kf' | 'log' | 'ver' | 'arch' | 'snap' | 'conf' | 'viol'

export const num = (n: number): string => n.toString(16).padStart(NUM_WIDTH, '0')
export const keyToNum = (key: string): number => Number.parseInt(key.slice(-NUM_WIDTH), 16)

export const metaKey = (id: string): string => `m!${id}`
export const metaRange = { gt: 'm!', lt: `m!${HIGH}` }

export const workflowRange = (id: string): { gt: string, lt: string } => ({ gt: `w!${id}!`, lt: `w!${id}!${HIGH}` })

export const key = (id: string, kind: Kind, n: number | string): string =>
  `w!${id}!${kind}!${typeof n === 'number' ? num(n) : n}`

/** All keys of one kind, optionally bounded: gt `after`, lte `through` (numbers). */
export const kindRange = (id: string, kind: Kind, bounds: { after?: number, through?: number, before?: number } = {}): Record<string, string> => {
  const range: Record<string, string> = {}
  range.gt = bounds.after === undefined ? `w!${id}!${kind}!` : key(id, kind, bounds.after)
  if (bounds.through !== undefined) range.lte = key(id, kind, bounds.through)
  else if (bounds.before !== undefined) range.lt = key(id, kind, bounds.before)
  else range.lt = `w!${id}!${kind}!${HIGH}`
  return range
}

/** The workflow a key belongs to (`m!<id>`, `w!<id>!...`), or null for keys outside every workflow. */
export const workflowOfKey = (k: string): string | null => {
  if (k.startsWith('m!')) return k.slice(2)
  if (!k.startsWith('w!')) return null
  const end = k.indexOf('!', 2)
  return end < 0 ? null : k.slice(2, end)
}
