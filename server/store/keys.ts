/**
 * The storage key layout, in one place. Keys are UTF-8 strings ordered bytewise; sequence numbers
 * are 16 lowercase hex digits so that lexicographic order is numeric order. Workflow ids never
 * contain '!' (see src/workflow-id.ts), so every prefix below is unambiguous.
 *
 *   m!<workflowId>                    -> WorkflowMeta (JSON): one per workflow, for listing
 *   w!<workflowId>!kf!<seq>           -> full document state (Y.encodeStateAsUpdate) that covers
 *                                        every log entry with a sequence number <= seq
 *   w!<workflowId>!log!<seq>          -> one Yjs update (v1 encoding), persisted before broadcast
 *
 * Loading a workflow = the newest keyframe + the log entries after it. Compaction writes a new
 * keyframe and deletes the log entries and keyframes it covers, in one atomic batch.
 * Every value is framed with a format byte and a CRC-32 (see frame.ts).
 */

const SEQ_WIDTH = 16
/** Sorts after every kind name and hex digit used below: the end of a range. */
const HIGH = '~'

export const seqToKey = (seq: number): string => seq.toString(16).padStart(SEQ_WIDTH, '0')
export const keyToSeq = (key: string): number => Number.parseInt(key.slice(-SEQ_WIDTH), 16)

export const metaKey = (id: string): string => `m!${id}`
export const metaRange = { gte: 'm!', lt: `m!${HIGH}` }
export const idFromMetaKey = (key: string): string => key.slice(2)

export const workflowPrefix = (id: string): string => `w!${id}!`
export const workflowRange = (id: string): { gte: string, lt: string } =>
  ({ gte: workflowPrefix(id), lt: workflowPrefix(id) + HIGH })

export const logKey = (id: string, seq: number): string => `w!${id}!log!${seqToKey(seq)}`
export const logRange = (id: string, afterSeq = -1): { gt: string, lt: string } =>
  ({ gt: afterSeq < 0 ? `w!${id}!log!` : logKey(id, afterSeq), lt: `w!${id}!log!${HIGH}` })

export const keyframeKey = (id: string, seq: number): string => `w!${id}!kf!${seqToKey(seq)}`
export const keyframeRange = (id: string): { gt: string, lt: string } =>
  ({ gt: `w!${id}!kf!`, lt: `w!${id}!kf!${HIGH}` })
