/**
 * A LangGraph.js checkpoint saver on Accord: each thread is a workflow, each `put` one version
 * authored by the saver's agent id, each `putWrites` another; both resolve only once the server
 * has stored them. Platform-free: the entries (`index.ts` for browsers, `node.ts` for Node) bind
 * the SDK's `openWorkflow` of their platform, so use `AccordSaver` from one of them.
 *
 *   const saver = new AccordCheckpointSaver({ url: 'ws://127.0.0.1:1234', openWorkflow })
 *   const graph = builder.compile({ checkpointer: saver })
 *   await graph.invoke(input, { configurable: { thread_id: 'chat-1' } })
 *   await saver.close()
 */
import {
  BaseCheckpointSaver, WRITES_IDX_MAP, compareWritesSortKeys, copyCheckpoint, getCheckpointId, writesSortKey,
  type ChannelVersions, type Checkpoint, type CheckpointListOptions, type CheckpointMetadata, type CheckpointPendingWrite,
  type CheckpointTuple, type PendingWrite, type SerializerProtocol
} from '@langchain/langgraph-checkpoint'
import type { RunnableConfig } from '@langchain/core/runnables'
import { AccordError, ClosedError, CorruptDataError } from '../model/errors.ts'
import { deepEqual, type JsonObject } from '../model/json.ts'
import { openThread, type OpenWorkflow, type Thread } from './thread.ts'
import { threadToWorkflowId, workflowIdToThread } from './thread-id.ts'
import {
  STATE_KEY, fromBlob, own, parseThread, toBlob, viewOf,
  type Blob, type CheckpointRecord, type NamespaceRecord, type ThreadRecord, type WriteRecord
} from './records.ts'

export interface AccordSaverOptions {
  /** Server address, e.g. ws://127.0.0.1:1234 */
  url: string
  /** A signed token, for servers with auth. */
  token?: string
  /** Author of every version the saver writes (default 'langgraph'). */
  agentId?: string
  /** Serializer for values that are not plain JSON (default LangGraph's JsonPlusSerializer). */
  serde?: SerializerProtocol
  /** WebSocket implementation, passed to `openWorkflow`. */
  WebSocket?: typeof globalThis.WebSocket
  /** How long connecting and each durable write may take, in ms (default 30 s). */
  timeoutMs?: number
}

/** A config the saver cannot act on: no thread id where one is needed, no checkpoint id for writes. */
export class SaverConfigError extends AccordError {
  constructor (message: string) {
    super('INVALID_REQUEST', message)
    this.name = 'SaverConfigError'
  }
}

interface Target { threadId: string, ns: string }

/** `__proto__` cannot be a key of the JSON state (assigning it replaces an object's prototype). */
const safeKey = (what: string, key: string): string => {
  if (key === '__proto__') throw new SaverConfigError(`${what} "__proto__" is reserved`)
  return key
}

const targetOf = (config: RunnableConfig, what: string): Target => {
  const threadId: unknown = config.configurable?.thread_id
  if (threadId === undefined) throw new SaverConfigError(`${what} needs configurable.thread_id, e.g. graph.invoke(input, { configurable: { thread_id: 'chat-1' } })`)
  if (typeof threadId !== 'string') throw new SaverConfigError(`${what}: configurable.thread_id must be a string`)
  const ns: unknown = config.configurable?.checkpoint_ns ?? ''
  if (typeof ns !== 'string') throw new SaverConfigError(`${what}: configurable.checkpoint_ns must be a string`)
  return { threadId, ns: safeKey('checkpoint_ns', ns) }
}

const emptyNamespace = (): NamespaceRecord => ({ checkpoints: {}, blobs: {}, writes: {} })

/** The draft's thread record, created on first use; drafts are plain JSON, hence the casts. */
const draftThread = (draft: JsonObject, threadId: string): ThreadRecord => {
  const existing = draft[STATE_KEY] as unknown as ThreadRecord | undefined
  if (existing !== undefined) return existing
  const created: ThreadRecord = { thread_id: threadId, namespaces: {} }
  draft[STATE_KEY] = created as unknown as JsonObject
  return created
}
const draftNamespace = (thread: ThreadRecord, ns: string): NamespaceRecord => {
  const existing = own(thread.namespaces, ns)
  if (existing !== undefined) return existing
  const created = emptyNamespace()
  thread.namespaces[ns] = created
  return created
}

/** LangGraph's own bookkeeping channels (`__start__`, `__pregel_tasks`, `branch:to:<node>`): not shown in `values`. */
const isInternalChannel = (channel: string): boolean => channel.startsWith('__') || channel.startsWith('branch:')

const newestFirst = (a: string, b: string): number => (a < b ? 1 : a > b ? -1 : 0)

export class AccordCheckpointSaver extends BaseCheckpointSaver {
  readonly agentId: string
  private readonly options: AccordSaverOptions
  private readonly openWorkflow: OpenWorkflow
  private readonly threads = new Map<string, Promise<Thread>>()
  private closed = false

  constructor (options: AccordSaverOptions & { openWorkflow: OpenWorkflow }) {
    super(options.serde)
    this.options = options
    this.openWorkflow = options.openWorkflow
    this.agentId = options.agentId ?? 'langgraph'
  }

  /** The workflow id a thread id maps to (see thread-id.ts). */
  workflowIdOf (threadId: string): string {
    return threadToWorkflowId(threadId)
  }

  private thread (threadId: string): Promise<Thread> {
    if (this.closed) return Promise.reject(new ClosedError('AccordSaver'))
    const workflowId = threadToWorkflowId(threadId)
    let thread = this.threads.get(workflowId)
    if (thread === undefined) {
      const { url, token, WebSocket, timeoutMs = 30_000 } = this.options
      thread = openThread(this.openWorkflow, workflowId, { url, token, WebSocket, agentId: this.agentId }, timeoutMs)
      this.threads.set(workflowId, thread)
      thread.catch(() => { if (this.threads.get(workflowId) === thread) this.threads.delete(workflowId) })
    }
    return thread
  }

  private async record (threadId: string): Promise<ThreadRecord | undefined> {
    const thread = await this.thread(threadId)
    await thread.fresh()
    return parseThread(thread.workflowId, thread.state[STATE_KEY])
  }

  async getTuple (config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    if (config.configurable?.thread_id === undefined) return undefined
    const { threadId, ns } = targetOf(config, 'getTuple')
    const namespace = own((await this.record(threadId))?.namespaces, ns)
    if (namespace === undefined) return undefined
    const wanted = getCheckpointId(config)
    const id = wanted !== '' && wanted !== undefined ? wanted : Object.keys(namespace.checkpoints).sort(newestFirst)[0]
    if (id === undefined) return undefined
    const record = own(namespace.checkpoints, id)
    if (record === undefined) return undefined
    return this.tuple(threadId, ns, id, record, namespace, await this.metadataOf(record))
  }

  async * list (config: RunnableConfig, options: CheckpointListOptions = {}): AsyncGenerator<CheckpointTuple> {
    const { before, filter } = options
    let limit = options.limit
    const c = config.configurable ?? {}
    // Without a thread id: the threads this saver has opened (it cannot enumerate a server's workflows).
    const threadIds: string[] = c.thread_id !== undefined
      ? [targetOf(config, 'list').threadId]
      : Array.from(this.threads.keys()).map(workflowIdToThread)
    const beforeId = before === undefined ? undefined : getCheckpointId(before)
    for (const threadId of threadIds) {
      const thread = await this.record(threadId)
      if (thread === undefined) continue
      const entries: Array<[string, string]> = []
      for (const [ns, namespace] of Object.entries(thread.namespaces)) {
        if (c.checkpoint_ns !== undefined && ns !== c.checkpoint_ns) continue
        for (const id of Object.keys(namespace.checkpoints)) entries.push([ns, id])
      }
      entries.sort((a, b) => newestFirst(a[1], b[1]))
      for (const [ns, id] of entries) {
        if (c.checkpoint_id !== undefined && c.checkpoint_id !== '' && id !== c.checkpoint_id) continue
        if (beforeId !== undefined && beforeId !== '' && id >= beforeId) continue
        const namespace = thread.namespaces[ns] as NamespaceRecord
        const record = namespace.checkpoints[id] as CheckpointRecord
        const metadata = await this.metadataOf(record)
        if (filter !== undefined && !Object.entries(filter).every(([k, v]) => deepEqual((metadata as Record<string, unknown>)[k], v))) continue
        if (limit !== undefined) {
          if (limit <= 0) return
          limit -= 1
        }
        yield await this.tuple(threadId, ns, id, record, namespace, metadata)
      }
    }
  }

  async put (config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, _newVersions: ChannelVersions): Promise<RunnableConfig> {
    const { threadId, ns } = targetOf(config, 'put')
    const thread = await this.thread(threadId)
    safeKey('checkpoint id', checkpoint.id)
    const { channel_values: values, ...rest } = copyCheckpoint(checkpoint)
    // Blob keys are chosen against what is stored, including other processes' puts.
    await thread.fresh()
    const namespace = own(parseThread(thread.workflowId, thread.state[STATE_KEY])?.namespaces, ns)
    const parentId = typeof config.configurable?.checkpoint_id === 'string' ? config.configurable.checkpoint_id : undefined
    const inherited = parentId === undefined ? {} : own(namespace?.checkpoints, parentId)?.channels ?? {}
    const taken = namespace?.blobs ?? {}
    // A value unchanged since the parent checkpoint (same channel version) is not stored again;
    // a new one gets its version as key, unless a fork from an older checkpoint already used it.
    const blobs: Array<[string, string, Blob]> = []
    const channels: Record<string, string> = {}
    const view: Record<string, unknown> = {}
    for (const [channel, value] of Object.entries(values)) {
      if (value === undefined) continue
      safeKey('channel name', channel)
      const version = own(rest.channel_versions, channel)
      const fromParent = own(inherited, channel)
      const kept = fromParent !== undefined && version !== undefined && fromParent.split('~')[0] === String(version) ? own(own(taken, channel), fromParent) : undefined
      let blob = kept
      if (fromParent !== undefined && kept !== undefined) channels[channel] = fromParent
      else {
        blob = await toBlob(this.serde, value)
        // Unversioned values (LangGraph's task list, reducer defaults) equal to the parent's: shared too.
        const parentBlob = fromParent === undefined ? undefined : own(own(taken, channel), fromParent)
        if (fromParent !== undefined && parentBlob !== undefined && deepEqual(parentBlob, blob)) {
          channels[channel] = fromParent
          if (!isInternalChannel(channel)) view[channel] = viewOf(blob)
          continue
        }
        const key = version !== undefined && own(own(taken, channel), String(version)) === undefined ? String(version) : `${String(version ?? '')}~${checkpoint.id}`
        channels[channel] = key
        blobs.push([channel, key, blob])
      }
      if (!isInternalChannel(channel) && blob !== undefined) view[channel] = viewOf(blob)
    }
    const record: CheckpointRecord = {
      parent: parentId ?? null,
      step: typeof metadata?.step === 'number' ? metadata.step : null,
      source: typeof metadata?.source === 'string' ? metadata.source : null,
      checkpoint: await toBlob(this.serde, rest),
      metadata: await toBlob(this.serde, metadata ?? {}),
      channels
    }
    const where = ns === '' ? '' : ` in ${ns}`
    await thread.write(draft => {
      const t = draftThread(draft, threadId)
      const target = draftNamespace(t, ns)
      for (const [channel, key, blob] of blobs) {
        if (!Object.hasOwn(target.blobs, channel)) target.blobs[channel] = {}
        ;(target.blobs[channel] as Record<string, Blob>)[key] = blob
      }
      target.checkpoints[checkpoint.id] = record
      if (ns === '') {
        t.head = checkpoint.id
        t.values = view
      }
    }, `LangGraph checkpoint ${checkpoint.id}${where}: step ${record.step ?? '?'}, source ${record.source ?? '?'}`)
    return { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: checkpoint.id } }
  }

  async putWrites (config: RunnableConfig, writes: PendingWrite[], taskId: string, taskPath?: string): Promise<void> {
    const { threadId, ns } = targetOf(config, 'putWrites')
    const checkpointId: unknown = config.configurable?.checkpoint_id
    if (typeof checkpointId !== 'string' || checkpointId === '') throw new SaverConfigError('putWrites needs configurable.checkpoint_id (the checkpoint the writes belong to)')
    safeKey('checkpoint_id', checkpointId)
    safeKey('task id', taskId)
    if (writes.length === 0) return
    const thread = await this.thread(threadId)
    const records: Array<[string, WriteRecord]> = []
    for (const [i, [channel, value]] of writes.entries()) {
      safeKey('channel name', channel)
      const idx = own(WRITES_IDX_MAP, channel) ?? i
      records.push([`${taskId}:${idx}`, { task: taskId, idx, channel, path: taskPath ?? '', value: await toBlob(this.serde, value) }])
    }
    const channels = Array.from(new Set(writes.map(w => w[0]))).join(', ')
    await thread.write(draft => {
      const namespace = draftNamespace(draftThread(draft, threadId), ns)
      if (!Object.hasOwn(namespace.writes, checkpointId)) namespace.writes[checkpointId] = {}
      const stored = namespace.writes[checkpointId] as Record<string, WriteRecord>
      // A retried task must not replace its first writes; special writes (errors, interrupts) may.
      for (const [key, record] of records) if (record.idx < 0 || own(stored, key) === undefined) stored[key] = record
    }, `LangGraph writes of task ${taskId} to checkpoint ${checkpointId}: ${channels}`)
  }

  async deleteThread (threadId: string): Promise<void> {
    const thread = await this.thread(threadId)
    if (thread.state[STATE_KEY] === undefined) return
    await thread.write(draft => { delete draft[STATE_KEY] }, 'LangGraph thread deleted')
  }

  /** Closes every connection the saver opened; later calls fail with ClosedError. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    const threads = Array.from(this.threads.values())
    this.threads.clear()
    await Promise.all(threads.map(async t => { await (await t.catch(() => null))?.close() }))
  }

  private async metadataOf (record: CheckpointRecord): Promise<CheckpointMetadata> {
    return await fromBlob(this.serde, record.metadata) as CheckpointMetadata
  }

  private async tuple (threadId: string, ns: string, id: string, record: CheckpointRecord, namespace: NamespaceRecord, metadata: CheckpointMetadata): Promise<CheckpointTuple> {
    const rest = await fromBlob(this.serde, record.checkpoint) as Omit<Checkpoint, 'channel_values'>
    const channel_values: Record<string, unknown> = {}
    for (const [channel, key] of Object.entries(record.channels)) {
      const blob = own(own(namespace.blobs, channel), key)
      if (blob === undefined) throw new CorruptDataError(`${threadToWorkflowId(threadId)}/${STATE_KEY}/namespaces/${ns}/blobs/${channel}/${key}`, `value of channel ${channel} for checkpoint ${id} is missing`)
      channel_values[channel] = await fromBlob(this.serde, blob)
    }
    const stored = Object.values(own(namespace.writes, id) ?? {})
      .map(w => ({ w, key: writesSortKey(w.path, w.task, w.idx) }))
      .sort((a, b) => compareWritesSortKeys(a.key, b.key))
    const pendingWrites: CheckpointPendingWrite[] = []
    for (const { w } of stored) pendingWrites.push([w.task, w.channel, await fromBlob(this.serde, w.value)])
    const tuple: CheckpointTuple = {
      config: { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: id } },
      checkpoint: { ...rest, id, channel_values } as Checkpoint,
      metadata,
      pendingWrites
    }
    if (record.parent !== null) tuple.parentConfig = { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: record.parent } }
    return tuple
  }
}
