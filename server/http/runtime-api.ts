/**
 * The agent runtime over HTTP: lifecycle transitions, soft reset, pause/resume and the task
 * queue (push, claim, complete, fail), each an authored write like a Yjs client's. These are the
 * handlers; their methods, paths and rights are rows of the route table in routes.ts.
 */
import { z } from 'zod'
import { assertJson, type JsonValue } from '../../src/model/json.ts'
import { setAt } from '../../src/model/json-yjs.ts'
import {
  DEFAULT_TRANSITIONS, AgentStatusSchema, TaskKindSchema, isPaused, newTaskRecord, readAgent, readRuntime,
  runtimeMap, softResetRecord, transitionRecord, writePause, writeResume
} from '../../src/model/runtime.ts'
import * as history from '../history/history.ts'
import { claimTask, completeTask, failTask } from '../runtime/runtime.ts'
import { HttpError, described, id, parse, readBody, write, type Handler, type Request } from './router.ts'

const runtimeOf = async (r: Request): Promise<ReturnType<typeof readRuntime>> => {
  const wid = id(r)
  await history.requireMeta(r.ctx, wid)
  return r.ctx.withWorkflow(wid, async wf => readRuntime(wf.doc))
}

export const getRuntime: Handler = runtimeOf

export const transition: Handler = async r => {
  const body = parse(z.object({ to: AgentStatusSchema, metadata: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  const agentId = r.params.agentId as string
  if (body.metadata !== undefined) assertJson(body.metadata)
  return r.ctx.withWorkflow(id(r), async wf => {
    const current = readAgent(wf.doc, agentId)
    const next = transitionRecord(agentId, current, body.to, body.metadata, DEFAULT_TRANSITIONS)
    await write(wf, r, `${agentId}: ${current?.status ?? 'idle'} -> ${body.to}`, () => { setAt(runtimeMap(wf.doc, 'agents'), agentId, next as unknown as JsonValue) })
    return next
  })
}

export const softReset: Handler = async r => {
  const agentId = r.params.agentId as string
  return r.ctx.withWorkflow(id(r), async wf => {
    const next = softResetRecord(readAgent(wf.doc, agentId))
    await write(wf, r, `${agentId}: soft reset to idle`, () => { setAt(runtimeMap(wf.doc, 'agents'), agentId, next as unknown as JsonValue) })
    return next
  })
}

export const pause: Handler = async r => {
  const body = parse(z.object({ reason: z.string().max(2000), metadata: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  if (body.metadata !== undefined) assertJson(body.metadata)
  return r.ctx.withWorkflow(id(r), async wf => {
    await write(wf, r, `${r.principal.agentId} paused: ${body.reason}`, () => { writePause(wf.doc, r.principal.agentId, body.reason, body.metadata) })
    return readRuntime(wf.doc).session
  })
}

export const resume: Handler = async r => {
  const body = parse(z.object({ context: z.record(z.string(), z.unknown()).optional() }), await readBody(r))
  if (body.context !== undefined) assertJson(body.context)
  return r.ctx.withWorkflow(id(r), async wf => {
    if (!isPaused(wf.doc)) throw new HttpError('INVALID_REQUEST', 'the workflow is not paused')
    wf.transact(() => { writeResume(wf.doc, r.principal.agentId, body.context) }, { agentId: r.principal.agentId }, described(r, `${r.principal.agentId} resumed`))
    await wf.whenFlushed(Number.POSITIVE_INFINITY)
    return readRuntime(wf.doc).session
  })
}

export const listTasks: Handler = async r => Object.values((await runtimeOf(r)).tasks).sort((a, b) => a.seq - b.seq)

export const pushTask: Handler = async r => {
  const body = parse(z.object({ payload: z.unknown(), kind: z.optional(TaskKindSchema), maxRetries: z.number().int().nonnegative().optional(), id: z.string().min(1).max(200).optional() }), await readBody(r))
  assertJson(body.payload ?? null)
  return r.ctx.withWorkflow(id(r), async wf => {
    const task = newTaskRecord(r.principal.agentId, body.payload ?? null, body)
    await write(wf, r, `${r.principal.agentId} pushed task ${task.id}`, () => { setAt(runtimeMap(wf.doc, 'tasks'), task.id, task as unknown as JsonValue) })
    r.res.statusCode = 201
    return task
  })
}

export const claim: Handler = async r => {
  const body = parse(z.object({ kind: z.optional(TaskKindSchema), leaseMs: z.number().int().positive().optional() }), await readBody(r))
  const task = await r.ctx.withWorkflow(id(r), wf => claimTask(wf, r.principal.agentId, body))
  if (task === null) {
    r.res.statusCode = 204
    return undefined
  }
  return task
}

export const complete: Handler = async r => {
  const body = parse(z.object({ result: z.unknown().optional() }), await readBody(r))
  return r.ctx.withWorkflow(id(r), wf => completeTask(wf, r.principal.agentId, r.params.taskId as string, body.result))
}

export const fail: Handler = async r => {
  const body = parse(z.object({ error: z.string().max(2000) }), await readBody(r))
  return r.ctx.withWorkflow(id(r), wf => failTask(wf, r.principal.agentId, r.params.taskId as string, body.error))
}
