/**
 * MCP clients for the tests, from the MCP SDK itself: over stdio spawning the installed
 * `accord mcp` (bin/accord.js, so run `npm run build` first), or over Streamable HTTP against
 * `/mcp`. Every client made here is closed by `closeMcpClients()`.
 */
import path from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'

const root = path.resolve(import.meta.dirname, '../..')
const clients = new Set<Client>()

export interface McpClient {
  client: Client
  /** URIs of every notifications/resources/updated received, in order. */
  updated: string[]
  /** stderr of the spawned `accord mcp` (stdio only). */
  stderr: () => string
}

const track = async (transport: StdioClientTransport | StreamableHTTPClientTransport, stderr: () => string): Promise<McpClient> => {
  const client = new Client({ name: 'accord-test', version: '1.0.0' })
  const updated: string[] = []
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, n => { updated.push(n.params.uri) })
  await client.connect(transport)
  clients.add(client)
  return { client, updated, stderr }
}

export const connectStdio = async (args: string[]): Promise<McpClient> => {
  const transport = new StdioClientTransport({ command: process.execPath, args: [path.join(root, 'bin/accord.js'), 'mcp', ...args], cwd: root, stderr: 'pipe' })
  let err = ''
  transport.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  return track(transport, () => err)
}

export const connectHttp = async (url: string, headers: Record<string, string> = {}): Promise<McpClient> =>
  track(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }), () => '')

export const closeMcpClients = async (): Promise<void> => {
  const all = Array.from(clients)
  clients.clear()
  await Promise.all(all.map(c => c.close().catch(() => {})))
}

export interface ToolReply {
  isError: boolean
  /** structuredContent: the result, or `{ error: { code, message, details } }`. */
  body: any
  text: string
}

export const call = async (c: McpClient, name: string, args: Record<string, unknown> = {}): Promise<ToolReply> => {
  const result = await c.client.callTool({ name, arguments: args })
  const content = result.content as Array<{ type: string, text?: string }>
  return { isError: result.isError === true, body: result.structuredContent, text: content.map(p => p.text ?? '').join('') }
}

/** The Accord code of a tool error (fails the test when the call succeeded). */
export const errorCode = (reply: ToolReply): string => {
  if (!reply.isError) throw new Error(`expected a tool error, got ${reply.text}`)
  return reply.body?.error?.code ?? reply.text
}
