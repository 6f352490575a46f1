/**
 * A LangGraph.js graph checkpointed in Accord, watched live by a second agent.
 *
 *   npx tsx examples/langgraph/graph.ts                       (own throwaway server, exits when done)
 *   npx tsx examples/langgraph/graph.ts --url ws://127.0.0.1:1234 --thread demo
 *
 * The graph writes release notes in four super-steps (collect -> plan -> draft -> polish).
 * Its checkpointer is an AccordSaver, so the thread is the Accord workflow of the same id and each
 * super-step one version authored by `release-graph`. A second agent (`watcher`, in this process
 * for the demo; it could be any process or browser) prints every change it sees: author,
 * description and the graph's values. To watch it in a browser too, start the browser example
 * (`npm run example:browser`), open `?workflow=demo`, and run this with `--url` and `--thread demo`
 * against the sync server it prints; `accord get demo` shows the same JSON.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { Annotation, END, START, StateGraph } from '@langchain/langgraph'
import { createServer } from '../../server/server.ts'
import { openWorkflow } from '../../src/node/index.ts'
import { AccordSaver } from '../../src/langgraph/node.ts'

const { values: args } = parseArgs({ options: { url: { type: 'string' }, thread: { type: 'string' }, 'step-ms': { type: 'string', default: '300' } } })
const stepMs = Number(args['step-ms'])

// 1. A server: the one given, or a throwaway one in this process.
let stopServer = async (): Promise<void> => {}
let url = args.url
if (url === undefined) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'accord-langgraph-'))
  const server = createServer({ port: 0, dataDir, log: { level: 'warn' } })
  url = (await server.listen()).url
  stopServer = async () => { await server.close(); await rm(dataDir, { recursive: true, force: true }) }
}
const thread = args.thread ?? `release-notes-${Date.now()}`
console.log(`server ${url}, thread ${thread}`)

// 2. The graph: plain JSON state, so every value is readable in the workflow.
const State = Annotation.Root({
  version: Annotation<string>,
  changes: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }),
  outline: Annotation<string[]>,
  notes: Annotation<string>
})
const pause = (): Promise<void> => new Promise(resolve => setTimeout(resolve, stepMs)) // so a human can watch
const saver = new AccordSaver({ url, agentId: 'release-graph' })
const graph = new StateGraph(State)
  .addNode('collect', async () => { await pause(); return { changes: ['faster sync', 'LangGraph saver'] } })
  .addNode('plan', async s => { await pause(); return { outline: s.changes.map(c => `- ${c}`) } })
  .addNode('draft', async s => { await pause(); return { notes: `Release ${s.version}\n${s.outline.join('\n')}` } })
  .addNode('polish', async s => { await pause(); return { notes: `${s.notes}\nThanks to all contributors.` } })
  .addEdge(START, 'collect')
  .addEdge('collect', 'plan')
  .addEdge('plan', 'draft')
  .addEdge('draft', 'polish')
  .addEdge('polish', END)
  .compile({ checkpointer: saver })

// 3. A second agent on the same workflow: prints each stored version the graph wrote.
const watcher = openWorkflow(saver.workflowIdOf(thread), { url, agentId: 'watcher' })
await watcher.whenSynced()
const described = new Set<string>()
let sawDescription = (): void => {}
const seen = watcher.subscribe({}, record => {
  const values = (watcher.state.langgraph as { values?: unknown } | undefined)?.values
  console.log(`watcher: v${record.version} by ${record.author}: ${record.description}`)
  if (record.description.includes('LangGraph checkpoint')) console.log(`         values ${JSON.stringify(values)}`)
  described.add(record.description)
  sawDescription()
})
await seen.ready

// 4. Run it; the checkpoint history is the thread's Accord history.
const config = { configurable: { thread_id: thread } }
const result = await graph.invoke({ version: '1.2.0' }, config)
// The last checkpoint is stored once invoke returns; let the watcher print it before closing.
const last = String((await graph.getState(config)).config.configurable?.checkpoint_id)
await new Promise<void>(resolve => {
  sawDescription = () => { if (Array.from(described).some(d => d.includes(last))) resolve() }
  sawDescription()
})
console.log(`graph done:\n${result.notes}`)
let checkpoints = 0
for await (const snapshot of graph.getStateHistory(config)) {
  checkpoints++
  void snapshot
}
console.log(`${checkpoints} checkpoints in thread ${thread}`)

seen()
await watcher.close()
await saver.close()
await stopServer()
