/**
 * `accord mcp`: an MCP server over stdio for desktop MCP clients, speaking to a running Accord
 * server as the agent its token names. Stdout carries only MCP messages; diagnostics go to stderr.
 *
 *   accord mcp --server ws://127.0.0.1:1234 --token $(accord token --agent claude --scope 'write:*')
 */
import { parseArgs } from 'node:util'
import { createAccordMcpServer } from '../../src/mcp/server.ts'
import { loadMcpSdk } from '../../src/mcp/sdk.ts'

export const MCP_USAGE = `  mcp                       Serve MCP (Model Context Protocol) over stdio for MCP clients
    --server <url>          Accord server (default ws://127.0.0.1:1234)
    --token <jwt>           Token; its sub is the agent id of every write (or env ACCORD_TOKEN)
    --agent <id>            Agent id on servers without auth (default mcp)
`

/** Runs until stdin closes or SIGINT / SIGTERM; returns the exit code (2: usage error). */
export const mcpCommand = async (args: string[]): Promise<number> => {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ args, options: { server: { type: 'string' }, token: { type: 'string' }, agent: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values
  } catch (err) {
    // A usage error: exit 2, as every other command.
    process.stderr.write(`accord: ${(err as Error).message}\n\nUsage: accord mcp [options]\n\n${MCP_USAGE}`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(`Usage: accord mcp [options]\n\n${MCP_USAGE}`)
    return 0
  }
  const sdk = await loadMcpSdk()
  const token = (values.token as string | undefined) ?? (process.env.ACCORD_TOKEN === '' ? undefined : process.env.ACCORD_TOKEN)
  const mcp = await createAccordMcpServer({ url: (values.server as string | undefined) ?? 'ws://127.0.0.1:1234', token, agentId: values.agent as string | undefined, sdk })
  const transport = new sdk.StdioServerTransport()
  await new Promise<void>(resolve => {
    const stop = (): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      process.stdin.off('end', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    process.stdin.on('end', stop)
    transport.onclose = stop
    mcp.server.connect(transport).catch((err: Error) => {
      process.stderr.write(`accord mcp: ${err.message}\n`)
      stop()
    })
  })
  await mcp.close()
  return 0
}
