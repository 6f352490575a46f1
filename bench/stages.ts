/**
 * "Where the time goes" for the cluster-cost scenario under `--profile` (issue #20): the self time
 * of every Accord server's CPU profile, by file, grouped into the stages an update passes
 * through, per persisted update. Comparing one server with three spread (most updates forwarded)
 * shows what forwarding and the bus add, stage by stage.
 *
 *   const ms = stageTimes(summaries)      // Map stage -> profiled ms, summed over the servers
 */
import type { Summary } from './profile.ts'

/** In the order an update meets them. */
export const STAGES = [
  'receive and decode (ws frames, y-protocols, connection)',
  'apply to the document (Yjs, change ops, checks)',
  'cut the version, after-commit hooks, metrics',
  'commit (PostgreSQL client)',
  'forward, publish, remote versions (cluster, Redis client)',
  'fan-out to peers (ws send, presence)',
  'socket writes (the native writev of every socket: fan-out frames, SQL, Redis)',
  'Node internals, GC, streams',
  'other (start-up, unattributed native code)'
] as const
export type Stage = typeof STAGES[number]

const RULES: Array<[RegExp, Stage]> = [
  [/ws\/lib\/(receiver|validation)|y-protocols\/|sync\/(connection|admission|update-check|rpc)\./, STAGES[0]],
  [/yjs\/|lib0\/|sync\/(workflow|pending-window|tx-changes|write-checks|load-doc)\.|src\/model\/|fast-json-patch|zod\//, STAGES[1]],
  [/sync\/(version-cut|commit-hooks|feed|list-watch)\.|server\/(history|hooks)\/|ops\/metrics\.|prom-client\//, STAGES[2]],
  [/store\/postgres|pg\/|pg-protocol\/|pg-pool\/|pg-types\/|src\/store\//, STAGES[3]],
  [/server\/cluster\/|ioredis\/|redis-parser\/|denque\/|cluster-key-slot\//, STAGES[4]],
  [/sync\/(fanout|presence)\.|ws\/lib\/(sender|websocket|buffer-util|permessage)/, STAGES[5]],
  [/^(writev|writeUtf8String|writeBuffer|writeLatin1String|writeAsciiString|writeUcs2String)$/, STAGES[6]],
  [/^node:zlib/, STAGES[3]],
  [/^node:|^internal\/|^\(garbage collector\)|^\(program\)|^\(root\)|^runMicrotasks$|^native /, STAGES[7]]
]

export const stageOf = (file: string): Stage => RULES.find(([re]) => re.test(file))?.[1] ?? STAGES[8]

/** Profiled ms by stage, summed over the summaries (every file's self time counted once). */
export const stageTimes = (summaries: Summary[]): Map<Stage, number> => {
  const out = new Map<Stage, number>(STAGES.map(s => [s, 0]))
  for (const s of summaries) for (const f of s.files) out.set(stageOf(f.name), (out.get(stageOf(f.name)) ?? 0) + f.ms)
  return out
}
