/**
 * Real `@langchain/langgraph` StateGraphs checkpointed by AccordSaver on a real `accord serve`
 * (the built CLI: run `npm run build` first): interrupt in one process resumed from another,
 * pending writes of parallel branches surviving a SIGKILL between super-steps, state history and
 * time travel, updateState, subgraphs, and another agent watching each super-step live.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChildProcess } from 'node:child_process'
import { Annotation, Command, END, START, StateGraph, interrupt } from '@langchain/langgraph'
import { kill, killChildren, runAccord, runChild, spawnAccord } from './helpers/child.ts'
import { openSse } from './helpers/http.ts'
import { removeTempDirs, tempDir } from './helpers/server.ts'
import { waitFor } from './helpers/wait.ts'
import { AccordSaver, threadToWorkflowId } from '../src/langgraph/node.ts'
import { openWorkflow, type VersionRecord } from '../src/node/index.ts'
import { approvalGraph, fanGraph } from './langgraph-child.ts'

let accord: { child: ChildProcess, url: string } | null = null
const savers: AccordSaver[] = []
const url = (): string => (accord as { url: string }).url
const saver = (agentId = 'langgraph'): AccordSaver => {
  const s = new AccordSaver({ url: url(), agentId })
  savers.push(s)
  return s
}

beforeAll(async () => {
  accord = await spawnAccord(['serve', '--port', '0', '--data', await tempDir()])
})
afterAll(async () => {
  await Promise.all(savers.splice(0).map(s => s.close()))
  if (accord !== null) await kill(accord.child)
  await killChildren()
  await removeTempDirs()
})

let counter = 0
const freshThread = (name: string): string => `graph-${name}-${Date.now()}-${++counter}`

describe('AccordSaver with StateGraph', () => {
  it('an interrupt() in one process is resumed from a second process with Command({ resume })', async () => {
    const thread = freshThread('interrupt')
    const { child, first } = await runChild('test/langgraph-child.ts', ['interrupt', url(), thread], 90_000)
    expect(first).toEqual({ interrupted: ['approve the draft?'] })
    // The first process is gone before the second resumes.
    if (child.exitCode === null && child.signalCode === null) await new Promise(resolve => child.once('exit', resolve))
    expect(child.exitCode).toBe(0)

    const graph = approvalGraph(saver('resumer'))
    const config = { configurable: { thread_id: thread } }
    const waiting = await graph.getState(config)
    expect(waiting.next).toEqual(['approve'])
    const done = await graph.invoke(new Command({ resume: 'yes' }), config)
    expect(done.log).toEqual(['draft release notes', 'answer yes', 'publish (yes)'])
    expect((await graph.getState(config)).next).toEqual([])
  }, 120_000)

  it('pending writes of a finished branch survive a SIGKILL between super-steps; the resume runs only the other branch', async () => {
    const thread = freshThread('crash')
    const { child, first } = await runChild('test/langgraph-child.ts', ['crash', url(), thread], 90_000)
    expect(first).toEqual({ fastStored: true })
    await kill(child)

    let fastRuns = 0
    const graph = fanGraph(saver('survivor'), {
      fast: async () => { fastRuns++; return 'fast ran again' },
      slow: async () => 'slow ran after the crash'
    })
    const config = { configurable: { thread_id: thread } }
    // The stored write of `fast` already counts: only `slow` is still to run.
    const before = await graph.getState(config)
    expect(before.next).toEqual(['slow'])
    const done = await graph.invoke(null, config)
    expect(fastRuns).toBe(0)
    expect(done.log).toEqual(expect.arrayContaining(['fast ran in the child', 'slow ran after the crash', 'join saw fast ran in the child+slow ran after the crash']))
  }, 120_000)

  it('getStateHistory lists every checkpoint newest first; replay from an older one forks; updateState writes one', async () => {
    const State = Annotation.Root({ n: Annotation<number>, trail: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }) })
    let bumps = 0
    const graph = new StateGraph(State)
      .addNode('double', s => ({ n: s.n * 2, trail: ['double'] }))
      .addNode('bump', s => { bumps++; return { n: s.n + 1, trail: ['bump'] } })
      .addEdge(START, 'double')
      .addEdge('double', 'bump')
      .addEdge('bump', END)
      .compile({ checkpointer: saver() })
    const config = { configurable: { thread_id: freshThread('history') } }
    expect((await graph.invoke({ n: 3 }, config)).n).toBe(7)

    const history = []
    for await (const snapshot of graph.getStateHistory(config)) history.push(snapshot)
    expect(history.map(h => h.metadata?.step)).toEqual([2, 1, 0, -1])
    expect(history.map(h => h.values.n)).toEqual([7, 6, 3, undefined])
    const afterDouble = history[1]
    expect(afterDouble?.next).toEqual(['bump'])

    // Time travel: replay from the checkpoint before `bump`; only bump runs again.
    const replay = await graph.invoke(null, afterDouble?.config)
    expect(replay.n).toBe(7)
    expect(bumps).toBe(2)
    // The new branch descends from the replayed checkpoint (through LangGraph's fork checkpoint).
    const ancestors: string[] = []
    let at = (await graph.getState(config)).parentConfig
    while (at !== undefined && ancestors.length < 10) {
      const snapshot = await graph.getState(at)
      ancestors.push(String(snapshot.config.configurable?.checkpoint_id))
      at = snapshot.parentConfig
    }
    expect(ancestors).toContain(afterDouble?.config.configurable?.checkpoint_id)
    expect(ancestors.length).toBeLessThanOrEqual(4)
    const branches = []
    for await (const snapshot of graph.getStateHistory(config)) branches.push(snapshot)
    expect(branches.length).toBeGreaterThan(history.length)

    // updateState: a checkpoint with source "update", seen by the next run.
    const updated = await graph.updateState(config, { n: 100, trail: ['edited'] })
    const state = await graph.getState(updated)
    expect(state.values.n).toBe(100)
    expect(state.values.trail).toEqual(['double', 'bump', 'edited'])
    expect(state.metadata?.source).toBe('update')
  })

  it('a subgraph keeps its checkpoints in its own namespace and resumes from its interrupt', async () => {
    const Inner = Annotation.Root({ topic: Annotation<string>, verdict: Annotation<string> })
    const inner = new StateGraph(Inner)
      .addNode('review', s => ({ verdict: `${s.topic}: ${interrupt<string, string>('verdict?')}` }))
      .addEdge(START, 'review')
      .addEdge('review', END)
      .compile()
    const Outer = Annotation.Root({ topic: Annotation<string>, verdict: Annotation<string> })
    const s = saver('outer')
    const graph = new StateGraph(Outer)
      .addNode('reviewer', inner)
      .addEdge(START, 'reviewer')
      .addEdge('reviewer', END)
      .compile({ checkpointer: s })
    const config = { configurable: { thread_id: freshThread('subgraph') } }
    await graph.invoke({ topic: 'api' }, config)
    const state = await graph.getState(config, { subgraphs: true })
    expect(state.next).toEqual(['reviewer'])
    const subState = state.tasks[0]?.state as { values: { topic: string } } | undefined
    expect(subState?.values.topic).toBe('api')

    const namespaces = new Set<string>()
    for await (const tuple of s.list({ configurable: { thread_id: config.configurable.thread_id } })) namespaces.add(String(tuple.config.configurable?.checkpoint_ns))
    expect(namespaces.has('')).toBe(true)
    expect(Array.from(namespaces).some(ns => ns.startsWith('reviewer:'))).toBe(true)

    const done = await graph.invoke(new Command({ resume: 'ship it' }), config)
    expect(done.verdict).toBe('api: ship it')
  })

  it('another agent subscribed to the thread\'s workflow sees each super-step as a change', async () => {
    const State = Annotation.Root({ items: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }) })
    const graph = new StateGraph(State)
      .addNode('plan', () => ({ items: ['plan'] }))
      .addNode('write', () => ({ items: ['write'] }))
      .addNode('check', () => ({ items: ['check'] }))
      .addEdge(START, 'plan')
      .addEdge('plan', 'write')
      .addEdge('write', 'check')
      .addEdge('check', END)
      .compile({ checkpointer: saver('graph-runner') })
    const thread = freshThread('watch')
    const watcher = openWorkflow(threadToWorkflowId(thread), { url: url(), agentId: 'watcher' })
    try {
      await watcher.whenSynced()
      const records: VersionRecord[] = []
      const seen: string[][] = []
      watcher.subscribe(change => {
        if (change.ops.some(op => op.path.startsWith('/langgraph/values'))) seen.push(((watcher.state.langgraph as any)?.values?.items ?? []) as string[])
      })
      const sub = watcher.subscribe({}, record => { records.push(record) })
      await sub.ready
      await graph.invoke({ items: [] }, { configurable: { thread_id: thread } })
      await waitFor(() => records.some(r => r.description.includes('step 3,')), { what: 'the last super-step as a version' })
      // The server may store a put and the next step's writes in one version (one flush window).
      const steps = records.flatMap(r => Array.from(r.description.matchAll(/LangGraph checkpoint \S+: step (-?\d+)/g), m => m[1]))
      expect(steps).toEqual(['-1', '0', '1', '2', '3'])
      expect(new Set(records.filter(r => r.description.startsWith('LangGraph')).map(r => r.author))).toEqual(new Set(['graph-runner']))
      await waitFor(() => seen.length >= 4 && JSON.stringify(seen.at(-1)) === JSON.stringify(['plan', 'write', 'check']), { what: 'the final values seen live' })
      expect(seen.map(s => s.length)).toEqual(expect.arrayContaining([1, 2, 3]))
    } finally {
      await watcher.close()
    }
  })

  it('accord get prints the graph\'s values and the SSE change stream carries each super-step', async () => {
    const State = Annotation.Root({ topic: Annotation<string>, notes: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }) })
    const graph = new StateGraph(State)
      .addNode('research', s => ({ notes: [`about ${s.topic}`] }))
      .addNode('summarize', s => ({ notes: [`${s.notes.length} note(s)`] }))
      .addEdge(START, 'research')
      .addEdge('research', 'summarize')
      .addEdge('summarize', END)
      .compile({ checkpointer: saver('sse-graph') })
    const thread = freshThread('sse')
    const config = { configurable: { thread_id: thread } }
    await graph.invoke({ topic: 'sync' }, config)
    const sse = openSse(`${url().replace(/^ws/, 'http')}/v1/workflows/${threadToWorkflowId(thread)}/events`)
    try {
      expect(await sse.status).toBe(200)
      await graph.invoke({ topic: 'crdt' }, config)
      const steps = (): string[] => sse.events.flatMap(e => Array.from((JSON.parse(e.data) as VersionRecord).description.matchAll(/step (-?\d+),/g), m => m[1] as string))
      await waitFor(() => steps().includes('5'), { what: 'the second run\'s last super-step on the SSE stream' })
      expect(steps()).toEqual(['3', '4', '5'])
    } finally {
      sse.close()
    }
    const got = await runAccord(['get', threadToWorkflowId(thread), '--server', url()])
    expect(got.code, got.stderr).toBe(0)
    const values = JSON.parse(got.stdout).langgraph.values
    expect(values).toEqual({ topic: 'crdt', notes: ['about sync', '1 note(s)', 'about crdt', '3 note(s)'] })
  })
})
