/**
 * A Node agent that edits a workflow over Yjs with the SDK, while HTTP agents (agent.py,
 * curl-session.sh) read, patch and follow the same workflow.
 *
 *   npx tsx examples/http/node-agent.ts --url ws://127.0.0.1:1234 --workflow demo --edits 5
 *
 * Every 200 ms (--interval) it makes one edit with a description: it records its progress
 * under /progress/<agent> and, when the workflow has a /notes list (agent.py makes one), appends
 * a note to it. Edits are CRDT changes, so they merge with concurrent HTTP patches. It prints
 * each version the server stored for it (via a record subscription) and exits once the server
 * stored all of them: exit 0, or 1 on an error or when --timeout (ms) runs out.
 */
import { parseArgs } from 'node:util'
import { openWorkflow, type JsonObject, type VersionRecord } from '../../src/node/index.ts'

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'ws://127.0.0.1:1234' },
    workflow: { type: 'string', default: 'demo' },
    agent: { type: 'string', default: 'node-agent' },
    edits: { type: 'string', default: '5' },
    interval: { type: 'string', default: '200' },
    timeout: { type: 'string', default: '30000' }
  }
})
const count = Number(values.edits)
const intervalMs = Number(values.interval)
const timeoutMs = Number(values.timeout)
if (![count, intervalMs, timeoutMs].every(n => Number.isInteger(n) && n >= 0) || count < 1) {
  console.error('usage: node-agent.ts --url ws://host:port --workflow ID [--agent NAME] [--edits N>=1] [--interval MS] [--timeout MS]')
  process.exit(2)
}
const agentId = values.agent
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

// Never hang: give up if the server does not store every edit in time.
const watchdog = setTimeout(() => {
  console.error(`node-agent: timed out after ${timeoutMs} ms`)
  process.exit(1)
}, timeoutMs)

const wf = openWorkflow(values.workflow, { url: values.url, agentId, recovery: { maxAttempts: 5 } })
try {
  await wf.whenSynced({ timeoutMs })

  // Watch the versions the server stores from now on; the last edit's description marks the end.
  const head = (await wf.history({ limit: 1 }))[0]?.version ?? 0
  const describe = (i: number): string => `${agentId} edit ${i} of ${count}`
  const stored = new Promise<void>(resolve => {
    wf.subscribe({ after: head }, (record: VersionRecord) => {
      if (record.author.split(',').includes(agentId)) console.log(`stored v${record.version}: ${record.description}`)
      if (record.description === describe(count)) resolve()
    })
  })

  for (let i = 1; i <= count; i++) {
    if (i > 1) await sleep(intervalMs)
    wf.update(draft => {
      const progress = (draft.progress ??= {}) as JsonObject
      progress[agentId] = i
      if (Array.isArray(draft.notes)) draft.notes.push(`${agentId}: edit ${i} of ${count}`)
    }, { description: describe(i) })
    console.log(`edit ${i} of ${count} sent`)
  }
  await stored
  console.log(`done: ${JSON.stringify(wf.state)}`)
} catch (err) {
  console.error(`node-agent: ${(err as Error).message}`)
  process.exitCode = 1
} finally {
  await wf.close()
  clearTimeout(watchdog)
}
