/**
 * An MCP (Model Context Protocol) server for one agent, built on the public SDK: Accord tools
 * (tools.ts) and workflow resources with subscriptions (resources.ts), talking to an Accord
 * server as the agent its token names (`sub`). Connect it to any MCP transport.
 *
 *   const mcp = await createAccordMcpServer({ url: 'ws://127.0.0.1:1234', token })
 *   await mcp.server.connect(new sdk.StdioServerTransport())
 *   await mcp.close()
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { decodeJwt } from 'jose'
import { AccordError } from '../model/errors.ts'
import { openWorkflow as nodeOpenWorkflow } from '../node/index.ts'
import { createHandles, type OpenWorkflow } from './handles.ts'
import { createHttpApi } from './http-api.ts'
import { registerResources } from './resources.ts'
import { loadMcpSdk, type McpSdk } from './sdk.ts'
import { registerTools } from './tools.ts'

export interface AccordMcpOptions {
  /** The Accord server, e.g. ws://127.0.0.1:1234 (its HTTP API is on the same port). */
  url: string
  /** A signed token; its `sub` is the agent id every write is authored by. */
  token?: string
  /** The agent id on servers without auth (default `mcp`); ignored with a token. */
  agentId?: string
  /** The SDK's openWorkflow (default: the Node entry's, with `ws`). */
  openWorkflow?: OpenWorkflow
  /** The loaded MCP SDK (default: loaded on demand). */
  sdk?: McpSdk
}

export interface AccordMcp {
  readonly server: McpServer
  readonly agentId: string
  /** Closes the MCP server and every workflow handle it opened. */
  close: () => Promise<void>
}

/** The agent id a token names (its `sub`); the Accord server verifies the token itself. */
export const agentOfToken = (token: string): string => {
  let sub: unknown
  try {
    sub = decodeJwt(token).sub
  } catch (err) {
    throw new AccordError('UNAUTHORIZED', `the token is not a JWT: ${(err as Error).message}`)
  }
  if (typeof sub !== 'string' || sub === '') throw new AccordError('UNAUTHORIZED', 'the token has no sub (agent id)')
  return sub
}

export const createAccordMcpServer = async (options: AccordMcpOptions): Promise<AccordMcp> => {
  const sdk = options.sdk ?? await loadMcpSdk()
  const agentId = options.token === undefined ? (options.agentId ?? 'mcp') : agentOfToken(options.token)
  const api = createHttpApi({ url: options.url, token: options.token, agentId })
  const handles = createHandles({ url: options.url, token: options.token, agentId, api, openWorkflow: options.openWorkflow ?? nodeOpenWorkflow })
  const server = new sdk.McpServer(
    { name: 'accord', title: 'Accord', version: '0.1.0' },
    { instructions: 'Shared, versioned JSON state of multi-agent workflows. Read with read_state or the accord://workflows/{workflowId} resources, write with apply_patch (RFC 6902), coordinate with the task tools. Errors carry an Accord code (NOT_FOUND, INVALID_PATCH, PRECONDITION_FAILED, FORBIDDEN, ...).' }
  )
  const ctx = { api, handles }
  registerTools(server, ctx)
  const subscriptions = registerResources(server, sdk, ctx)
  let closed = false
  return {
    server,
    agentId,
    close: async () => {
      if (closed) return
      closed = true
      subscriptions.close()
      await server.close().catch(() => {})
      await handles.close()
    }
  }
}
