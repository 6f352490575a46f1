/**
 * Graphs shared by test/langgraph-graph.test.ts and the child processes it starts (so a second
 * process runs the very graph the first one was running), and the child's entry:
 *
 *   node --import tsx test/langgraph-child.ts interrupt <url> <thread>  -> runs to the interrupt, prints, exits
 *   node --import tsx test/langgraph-child.ts crash <url> <thread>      -> prints once fast's writes are stored, then hangs
 */
import { Annotation, END, START, StateGraph, interrupt } from '@langchain/langgraph'
import type { BaseCheckpointSaver } from '@langchain/langgraph-checkpoint'
import { AccordSaver } from '../src/langgraph/node.ts'

const appendLog = Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] })

export const ApprovalState = Annotation.Root({ request: Annotation<string>, answer: Annotation<string>, log: appendLog })

/** draft -> approve (interrupts for a human answer) -> publish. */
export const approvalGraph = (saver: BaseCheckpointSaver) => new StateGraph(ApprovalState)
  .addNode('draft', state => ({ log: [`draft ${state.request}`] }))
  .addNode('approve', () => {
    const answer = interrupt<string, string>('approve the draft?')
    return { answer, log: [`answer ${answer}`] }
  })
  .addNode('publish', state => ({ log: [`publish (${state.answer})`] }))
  .addEdge(START, 'draft')
  .addEdge('draft', 'approve')
  .addEdge('approve', 'publish')
  .addEdge('publish', END)
  .compile({ checkpointer: saver })

export const FanState = Annotation.Root({ log: appendLog })

/** START -> fast and slow in parallel -> join. */
export const fanGraph = (saver: BaseCheckpointSaver, nodes: { fast: () => Promise<string>, slow: () => Promise<string> }) => new StateGraph(FanState)
  .addNode('fast', async () => ({ log: [await nodes.fast()] }))
  .addNode('slow', async () => ({ log: [await nodes.slow()] }))
  .addNode('join', state => ({ log: [`join saw ${state.log.slice().sort().join('+')}`] }))
  .addEdge(START, 'fast')
  .addEdge(START, 'slow')
  .addEdge('fast', 'join')
  .addEdge('slow', 'join')
  .addEdge('join', END)
  .compile({ checkpointer: saver })

const main = async (): Promise<void> => {
  const [mode, url, thread] = process.argv.slice(2) as [string, string, string]
  const saver = new AccordSaver({ url, agentId: `child-${mode}` })
  const config = { configurable: { thread_id: thread } }
  if (mode === 'interrupt') {
    const graph = approvalGraph(saver)
    await graph.invoke({ request: 'release notes' }, config)
    const state = await graph.getState(config)
    process.stdout.write(JSON.stringify({ interrupted: state.tasks.flatMap(t => t.interrupts.map(i => i.value)) }) + '\n')
    await saver.close()
    return
  }
  // crash: slow waits until the server holds fast's pending write, says so, and never finishes.
  const graph = fanGraph(saver, {
    fast: async () => 'fast ran in the child',
    slow: async () => {
      for (;;) {
        const tuple = await saver.getTuple(config)
        if (tuple?.pendingWrites?.some(([, channel, value]) => channel === 'log' && JSON.stringify(value).includes('fast'))) break
        await new Promise(resolve => setTimeout(resolve, 20))
      }
      process.stdout.write(JSON.stringify({ fastStored: true }) + '\n')
      return new Promise<string>(() => {})
    }
  })
  await graph.invoke({ log: [] }, config)
}

if (process.argv[1]?.endsWith('langgraph-child.ts')) void main().catch((err: unknown) => { process.stderr.write(String((err as Error).stack ?? err)); process.exit(1) })
