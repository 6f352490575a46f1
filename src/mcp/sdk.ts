/**
 * Loads `@modelcontextprotocol/sdk` on demand: it is an optional peer dependency, so only
 * `accord mcp` and `accord serve --mcp` need it installed.
 *
 *   const sdk = await loadMcpSdk()
 *   const server = new sdk.McpServer({ name: 'accord', version: '0.1.0' })
 */
import { AccordError } from '../model/errors.ts'

export const MCP_PACKAGE = '@modelcontextprotocol/sdk'

/** The SDK is missing (or too old to have the modules Accord uses). */
export class McpSdkMissingError extends AccordError {
  constructor (cause: unknown) {
    super('NOT_SUPPORTED', `the MCP server needs the optional package ${MCP_PACKAGE} (npm install ${MCP_PACKAGE}): ${(cause as Error).message}`, { package: MCP_PACKAGE }, { cause })
    this.name = 'McpSdkMissingError'
  }
}

const load = async () => {
  const [mcp, types, stdio, http] = await Promise.all([
    import('@modelcontextprotocol/sdk/server/mcp.js'),
    import('@modelcontextprotocol/sdk/types.js'),
    import('@modelcontextprotocol/sdk/server/stdio.js'),
    import('@modelcontextprotocol/sdk/server/streamableHttp.js')
  ])
  return {
    McpServer: mcp.McpServer,
    ResourceTemplate: mcp.ResourceTemplate,
    SubscribeRequestSchema: types.SubscribeRequestSchema,
    UnsubscribeRequestSchema: types.UnsubscribeRequestSchema,
    isInitializeRequest: types.isInitializeRequest,
    McpError: types.McpError,
    StdioServerTransport: stdio.StdioServerTransport,
    StreamableHTTPServerTransport: http.StreamableHTTPServerTransport
  }
}

export type McpSdk = Awaited<ReturnType<typeof load>>

/** The SDK's server modules, or a McpSdkMissingError naming the package. */
export const loadMcpSdk = async (): Promise<McpSdk> => {
  try {
    return await load()
  } catch (err) {
    throw new McpSdkMissingError(err)
  }
}
