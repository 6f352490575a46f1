/**
 * The exported record schemas (zod/mini since the light browser SDK) as users and the server
 * rely on them: the records a real server hands out pass them unchanged, damaged copies fail at
 * the damaged field, and classic zod composes them.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import * as zm from 'zod/mini'
import { useServers } from './helpers/use-servers.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { jitted } from '../src/store/jit-schema.ts'
import {
  AgentRecordSchema, ChangeMetaSchema, SessionRecordSchema, TaskKindSchema, TaskRecordSchema, VersionRecordSchema,
  ViolationRecordSchema, WorkflowIdSchema
} from '../src/node/index.ts'

const { start } = useServers()
afterEach(async () => { await closeClients() })

/** Where a value fails a schema: the paths of its issues. */
const failures = (schema: { safeParse: (v: unknown) => { success: boolean, error?: { issues: Array<{ path: PropertyKey[] }> } } }, value: unknown): PropertyKey[][] => {
  const result = schema.safeParse(value)
  return result.success ? [] : (result.error?.issues ?? []).map(i => i.path)
}

describe('record schemas', () => {
  it('accept what a real server records and return it unchanged', async () => {
    const srv = await start()
    const a = sdkAgent(srv.url, 'wf-schemas', 'planner')
    await a.whenSynced()
    a.update(d => { d.plan = ['draft'] }, { description: 'plan', meta: { runId: 'run-1' } })
    a.lifecycle.transition('processing', { metadata: { step: 1 } })
    const task = a.tasks.push({ job: 'write' }, { kind: 'queue' })
    await a.tasks.claim({ kind: 'queue', leaseMs: 60_000 })
    // Everything above persisted (however the server batched it into versions).
    await waitFor(async () => (await a.history()).some(v => (v.runtimeChanges ?? []).some(c => c.path.endsWith('/status') && c.value === 'claimed')), { what: 'the claim in history' })

    const versions = await a.history()
    expect(versions.some(v => v.meta.runId === 'run-1')).toBe(true)
    for (const v of versions) expect(VersionRecordSchema.parse(v)).toEqual(v)
    expect(AgentRecordSchema.parse(a.lifecycle.get())).toEqual(a.lifecycle.get())
    await waitFor(() => a.tasks.get(task.id)?.status === 'claimed')
    expect(TaskRecordSchema.parse(a.tasks.get(task.id))).toEqual(a.tasks.get(task.id))
    expect(SessionRecordSchema.parse(a.session)).toEqual(a.session)
  })

  it('reject damaged records at the damaged field', () => {
    const version = {
      workflowId: 'wf', version: 2, parentVersion: 1, snapshot: 'AA==', author: 'a', timestamp: 1, description: '',
      meta: {}, checksum: 'f'.repeat(64), changes: [{ op: 'add', path: '/x', value: 1 }]
    }
    expect(failures(VersionRecordSchema, version)).toEqual([])
    expect(failures(VersionRecordSchema, { ...version, checksum: 'not hex' })).toEqual([['checksum']])
    expect(failures(VersionRecordSchema, { ...version, version: 1.5 })).toEqual([['version']])
    expect(failures(VersionRecordSchema, { ...version, version: 0 })).toEqual([['version']])
    expect(failures(VersionRecordSchema, { ...version, changes: [{ op: 'frobnicate', path: '/x' }] })).toEqual([['changes', 0, 'op']])
    expect(failures(ChangeMetaSchema, { runId: 'r'.repeat(201) })).toEqual([['runId']])
    const task = (a: Record<string, unknown>) => ({ id: 't', kind: 'stack', seq: 1, payload: null, status: 'pending', createdAt: 1, createdBy: 'a', claimedBy: null, claimedAt: null, leaseMs: null, attempts: 0, maxRetries: 3, ...a })
    expect(failures(TaskRecordSchema, task({}))).toEqual([])
    expect(failures(TaskRecordSchema, task({ status: 'lost', attempts: 0.5 }))).toEqual([['status'], ['attempts']])
    expect(failures(WorkflowIdSchema, 'release-42')).toEqual([])
    expect(failures(WorkflowIdSchema, 'a!b')).toEqual([[]])
  })

  it('have JIT twins on the Node side (stores) that judge every record the same way', () => {
    const version = {
      workflowId: 'wf', version: 2, parentVersion: 1, snapshot: 'AA==', author: 'a', timestamp: 1, description: '',
      meta: { runId: 'r' }, checksum: 'f'.repeat(64), changes: [{ op: 'add', path: '/x', value: { deep: [1] } }], extra: 'dropped'
    }
    const cases = [
      version, { ...version, checksum: 'nope' }, { ...version, version: -1 }, { ...version, meta: { runId: 7 } },
      { ...version, changes: [{ op: 'add' }] }, { ...version, runtimeChanges: [] }, { ...version, runtimeChanges: null }, null, 'x'
    ]
    const twin = jitted(VersionRecordSchema)
    expect(twin).not.toBe(VersionRecordSchema)
    expect(jitted(VersionRecordSchema)).toBe(twin)
    for (const value of cases) {
      const [a, b] = [VersionRecordSchema.safeParse(value), twin.safeParse(value)]
      expect({ success: b.success, data: b.data, paths: b.error?.issues.map(i => i.path) }).toEqual({ success: a.success, data: a.data, paths: a.error?.issues.map(i => i.path) })
    }
    expect(twin.parse(version)).not.toHaveProperty('extra')
    const task = { id: 't', kind: 'stack', seq: 1, payload: null, status: 'pending', createdAt: 1, createdBy: 'a', claimedBy: null, claimedAt: null, leaseMs: null, attempts: 0, maxRetries: 3 }
    for (const value of [task, { ...task, claimedBy: 3 }, { ...task, kind: 'heap' }]) {
      expect(jitted(TaskRecordSchema).safeParse(value).success).toBe(TaskRecordSchema.safeParse(value).success)
    }
  })

  it('compose with classic zod and zod/mini alike', () => {
    const Claim = z.object({ kind: z.optional(TaskKindSchema), leaseMs: z.number().int().positive().optional() })
    expect(Claim.parse({ kind: 'queue' })).toEqual({ kind: 'queue' })
    expect(Claim.safeParse({ kind: 'heap' }).success).toBe(false)
    const Forwarded = z.array(zm.omit(ViolationRecordSchema, { id: true, workflowId: true, version: true }))
    const violation = { kind: 'scope', agent: 'a', paths: ['/x'], reverted: true, at: 1 }
    expect(Forwarded.parse([violation])).toEqual([violation])
    expect(Forwarded.safeParse([{ ...violation, kind: 'other' }]).success).toBe(false)
  })
})
