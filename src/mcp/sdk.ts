/**
 * Loads `@modelcontextprotocol/sdk` on demand: it is an optional peer dependency, so only
 * `accord mcp` and `accord serve --mcp` need it installed.
 *
 *   const sdk = await loadMcpSdk()
 *   const server = new sdk.McpServer({ name: 'accord', version: '0.1.0' })
 */
import { importOptional } from '../model/optional-dependency.ts'

export const MCP_PACKAGE = '@modelcontextprotocol/sdk'

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

/** The SDK's server modules, or a MissingDependencyError (MISSING_DEPENDENCY) naming the package. */
export const loadMcpSdk = (): Promise<McpSdk> => importOptional(MCP_PACKAGE, 'The MCP server', load)
