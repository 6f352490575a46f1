/**
 * Workflow states as MCP resources, `accord://workflows/{workflowId}` (JSON), listed through a
 * resource template, with `resources/subscribe`: a subscribed client gets
 * `notifications/resources/updated` for every new version of that workflow, whoever wrote it
 * (fed by the SDK's record subscription, which resumes across reconnects).
 *
 *   const subs = registerResources(mcpServer, sdk, { api, handles })
 *   await subs.close()
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { AccordError } from '../model/errors.ts'
import type { McpSdk } from './sdk.ts'
import type { ToolContext } from './tools.ts'

export const RESOURCE_PREFIX = 'accord://workflows/'
export const resourceUri = (workflowId: string): string => RESOURCE_PREFIX + encodeURIComponent(workflowId)

const workflowOf = (uri: string): string => {
  if (!uri.startsWith(RESOURCE_PREFIX) || uri.length === RESOURCE_PREFIX.length) throw new AccordError('NOT_FOUND', `not an Accord workflow resource: ${uri}`)
  try {
    return decodeURIComponent(uri.slice(RESOURCE_PREFIX.length))
  } catch {
    throw new AccordError('INVALID_REQUEST', `malformed percent-encoding in ${uri}`)
  }
}

export interface ResourceSubscriptions {
  /** URIs currently subscribed. */
  subscribed: () => string[]
  close: () => void
}

/** MCP's "resource not found" error code (-32002); other refusals are invalid params. */
const RESOURCE_NOT_FOUND = -32002
const INVALID_PARAMS = -32602

export const registerResources = (server: McpServer, sdk: Pick<McpSdk, 'ResourceTemplate' | 'SubscribeRequestSchema' | 'UnsubscribeRequestSchema' | 'McpError'>, ctx: ToolContext): ResourceSubscriptions => {
  const { api, handles } = ctx
  // Resource calls have no tool-error form: a refusal is a JSON-RPC error naming the Accord code.
  const refusing = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      if (!(err instanceof AccordError)) throw err
      throw new sdk.McpError(err.code === 'NOT_FOUND' ? RESOURCE_NOT_FOUND : INVALID_PARAMS, `${err.code}: ${err.message}`, { code: err.code, details: err.details ?? null })
    }
  }
  const template = new sdk.ResourceTemplate(`${RESOURCE_PREFIX}{workflowId}`, {
    list: async () => ({
      resources: (await api.list()).map(w => ({ uri: resourceUri(w.workflowId), name: w.workflowId, mimeType: 'application/json', description: `state of workflow ${w.workflowId} (version ${w.version})` }))
    })
  })
  server.registerResource('workflow', template, {
    title: 'Workflow state',
    description: 'The JSON state of an Accord workflow; subscribe to hear about every new version.',
    mimeType: 'application/json'
  }, uri => refusing(async () => {
    const reply = await api.read(workflowOf(uri.href))
    return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(reply.state), _meta: { version: reply.version } }] }
  }))

  const subscriptions = new Map<string, () => void>()
  server.server.registerCapabilities({ resources: { subscribe: true } })
  server.server.setRequestHandler(sdk.SubscribeRequestSchema, request => refusing(async () => {
    const uri = request.params.uri
    if (subscriptions.has(uri)) return {}
    const id = workflowOf(uri)
    // Held while the handle opens, so a repeated subscribe does not subscribe twice.
    let cancelled = false
    subscriptions.set(uri, () => { cancelled = true })
    try {
      const handle = await handles.get(id)
      if (cancelled) return {}
      const stop = handle.subscribe({}, () => { void server.server.sendResourceUpdated({ uri }).catch(() => {}) })
      subscriptions.set(uri, stop)
      // Answer only once the server streams to us: an edit right after the reply is not missed.
      await stop.ready
      return {}
    } catch (err) {
      subscriptions.delete(uri)
      throw err
    }
  }))
  server.server.setRequestHandler(sdk.UnsubscribeRequestSchema, async request => {
    subscriptions.get(request.params.uri)?.()
    subscriptions.delete(request.params.uri)
    return {}
  })

  return {
    subscribed: () => Array.from(subscriptions.keys()),
    close: () => {
      for (const stop of subscriptions.values()) stop()
      subscriptions.clear()
    }
  }
}
