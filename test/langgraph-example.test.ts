/**
 * examples/langgraph/graph.ts run as its users run it (a child process with its own server):
 * the graph finishes, and its watcher agent printed each super-step as a version by the graph.
 */
import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..')

const run = (args: string[], timeoutMs = 90_000): Promise<{ code: number | null, stdout: string, stderr: string }> => new Promise((resolve, reject) => {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'examples/langgraph/graph.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`example timed out: ${stderr}`)) }, timeoutMs)
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.on('exit', code => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
})

describe('examples/langgraph/graph.ts', () => {
  it('runs the graph to the end while a second agent sees each super-step live', async () => {
    const { code, stdout, stderr } = await run(['--step-ms', '0', '--thread', `example-${Date.now()}`])
    expect(code, stderr).toBe(0)
    for (const step of ['-1', '0', '1', '2', '3', '4']) expect(stdout).toMatch(new RegExp(`watcher: v\\d+ by release-graph: .*LangGraph checkpoint \\S+: step ${step}, source`))
    expect(stdout).toContain('Thanks to all contributors.')
    expect(stdout).toMatch(/6 checkpoints in thread example-/)
    expect(stdout).not.toContain('__pregel_tasks')
  }, 120_000)
})
