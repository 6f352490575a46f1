/**
 * Every code block of README.md runs as a user would run it (the README is read at run time;
 * ACCORD_README=path tests another file). Needs `npm run build`: blocks import the package by
 * its name, resolved through its own `exports` (self-reference), like an installed copy.
 *
 * - ts / js blocks: an ES module run with `node --import tsx` from a file inside the repo (so
 *   `@accord-state/accord`, zod, ... resolve), cwd a temp dir, against a fresh server on an
 *   ephemeral port (ws://127.0.0.1:1234 and http://127.0.0.1:1234 are rewritten to it); it
 *   must exit 0 within 60 s (a handle left open is a failure).
 * - sh blocks: each command in order, against a fresh server likewise. `accord serve` / `npm start`
 *   run on a free port until /readyz answers, then are stopped; `npm install|ci` and `npm test`
 *   are not run (printed); npm commands run in the repo, others in a temp dir; each must exit 0.
 * - every ts/js/sh block must run: one after a `<!-- no-run: reason -->` marker fails with the
 *   reason (show such text in a text fence instead); other languages (text, json, none) are
 *   not code to run.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { useServers } from './helpers/use-servers.ts'
import { tempDir } from './helpers/server.ts'
import { SCRIPT_LANGS, SHELL_LANGS, codeBlocks, rewriteAddresses, shellCommands, type CodeBlock } from './helpers/readme.ts'

const { start } = useServers()
const root = path.resolve(import.meta.dirname, '..')
const readmePath = path.resolve(root, process.env.ACCORD_README ?? 'README.md')
const name = path.relative(root, readmePath)
const scratch = path.join(root, '.scratch', `readme-${process.pid}`)
const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href
const cli = path.join(root, 'bin/accord.js')
const BLOCK_TIMEOUT_MS = 60_000

interface Run { code: number | null, output: string, timedOut: boolean }

const started = new Set<number>()
afterAll(() => {
  // Whatever a failed test left running: only process groups this file started.
  for (const pid of started) try { process.kill(-pid, 'SIGKILL') } catch {}
  rmSync(scratch, { recursive: true, force: true })
})

/** Runs a command (its own process group, so a timeout stops its children too). */
const run = (cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> => new Promise(resolve => {
  const child = spawn(cmd, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } })
  started.add(child.pid as number)
  let output = ''
  let timedOut = false
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const timer = setTimeout(() => {
    timedOut = true
    try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
  }, timeoutMs)
  child.on('exit', code => {
    clearTimeout(timer)
    started.delete(child.pid as number)
    resolve({ code, output, timedOut })
  })
})

const freePort = (): Promise<number> => new Promise((resolve, reject) => {
  const probe = net.createServer()
  probe.once('error', reject)
  probe.listen(0, '127.0.0.1', () => {
    const port = (probe.address() as net.AddressInfo).port
    probe.close(() => { resolve(port) })
  })
})

const numbered = (block: CodeBlock): string =>
  block.code.split('\n').map((l, i) => `${String(block.line + 1 + i).padStart(4)} | ${l}`).join('\n')

const failure = (block: CodeBlock, what: string, result: Run): string =>
  `${name}:${block.line} (${block.lang} block): ${what} ${result.timedOut ? `did not exit within the time limit (a handle left open?)` : `exited with code ${String(result.code)}`}\n` +
  `--- block ---\n${numbered(block)}\n--- output ---\n${result.output.trim()}`

/** `npx accord ...`, `accord ...`, `npm start` as the repo's own CLI. */
const asCli = (command: string): string => command
  .replace(/^npm start\b/, `node ${cli} serve`)
  .replace(/^(?:npx\s+)?accord\b/, `node ${cli}`)

const isServe = (command: string): boolean => /^node \S+accord\.js serve\b/.test(command)

/** Runs `accord serve ...` on a free port until it is ready, then stops it. */
const runServe = async (block: CodeBlock, command: string, cwd: string): Promise<void> => {
  const port = await freePort()
  let cmd = /--port[ =]\d+/.test(command) ? command.replace(/--port[ =]\d+/, `--port ${port}`) : `${command} --port ${port}`
  // A private PostgreSQL schema, so the README's cluster commands leave the shared database alone.
  cmd = cmd.replace(/(postgres(?:ql)?:\/\/[^\s?]+)(?!\?)(\s|$)/g, `$1?schema=readme_${process.pid}_${port}$2`)
  const child = spawn('bash', ['-c', cmd], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  started.add(child.pid as number)
  let output = ''
  let exited: number | null | undefined
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const gone = new Promise<void>(resolve => { child.on('exit', code => { exited = code; resolve() }) })
  const deadline = Date.now() + 30_000
  let ready = false
  while (!ready && exited === undefined && Date.now() < deadline) {
    ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(r => r.ok, () => false)
    if (!ready) await new Promise(resolve => setTimeout(resolve, 100))
  }
  if (exited === undefined) process.kill(-(child.pid as number), 'SIGTERM')
  await gone
  started.delete(child.pid as number)
  if (!ready) throw new Error(failure(block, `\`${command}\` never became ready and`, { code: exited ?? null, output, timedOut: exited === undefined }))
}

const runShellBlock = async (block: CodeBlock): Promise<void> => {
  const srv = await start()
  const cwd = await tempDir('accord-readme-')
  for (const { offset, command: original } of shellCommands(block.code)) {
    const where = `${name}:${block.line + 1 + offset}`
    if (/^npm (install|i|ci)\b/.test(original)) { console.log(`${where}: not run: \`${original}\` (would change the shared node_modules)`); continue }
    if (/^npm (test|t)\b|^npm run test\b/.test(original)) { console.log(`${where}: not run: \`${original}\` (the whole suite)`); continue }
    let command = asCli(rewriteAddresses(original, srv.port))
    if (isServe(command)) {
      await runServe(block, command, cwd)
      continue
    }
    // Commands that talk to a server: to the test server unless the block names one.
    if (/^node \S+accord\.js (get|backup)\b/.test(command) && !/--server\b/.test(command)) {
      command += / get\b/.test(command) ? ` --server ${srv.url}` : ` --server http://127.0.0.1:${srv.port}`
    }
    const result = await run('bash', ['-c', command], command.startsWith('npm ') ? root : cwd, BLOCK_TIMEOUT_MS)
    if (result.code !== 0) throw new Error(failure(block, `\`${original}\` (line ${block.line + 1 + offset})`, result))
  }
}

const runScriptBlock = async (block: CodeBlock): Promise<void> => {
  const srv = await start()
  const cwd = await tempDir('accord-readme-')
  mkdirSync(scratch, { recursive: true })
  const ext = ['js', 'javascript', 'mjs'].includes(block.lang) ? 'mjs' : 'ts'
  const file = path.join(scratch, `block-${block.line}.${ext}`)
  writeFileSync(file, rewriteAddresses(block.code, srv.port) + '\n')
  const result = await run(process.execPath, ['--import', tsx, file], cwd, BLOCK_TIMEOUT_MS)
  if (result.code !== 0) throw new Error(failure(block, 'the block', result))
}

describe('the README extractor', () => {
  it('finds blocks with their fence line, language and no-run marker, and splits shell commands', () => {
    const md = ['# t', '', '```ts', 'const a = 1', '```', '<!-- no-run: needs a GPU -->', '', '~~~sh', 'npx accord serve   # comment', 'echo "a # b" \\', '  c', '~~~', '```', 'plain', '```'].join('\n')
    const blocks = codeBlocks(md)
    expect(blocks).toEqual([
      { line: 3, lang: 'ts', code: 'const a = 1', noRun: null },
      { line: 8, lang: 'sh', code: 'npx accord serve   # comment\necho "a # b" \\\n  c', noRun: 'needs a GPU' },
      { line: 13, lang: '', code: 'plain', noRun: null }
    ])
    expect(shellCommands(blocks[1]!.code)).toEqual([{ offset: 0, command: 'npx accord serve' }, { offset: 1, command: 'echo "a # b" c' }])
    expect(rewriteAddresses("url: 'ws://127.0.0.1:1234', h: 'http://localhost:1234/v1', port: 1234", 4321)).toBe("url: 'ws://127.0.0.1:4321', h: 'http://127.0.0.1:4321/v1', port: 0")
  })
})

describe(`${name} code blocks`, () => {
  const blocks = existsSync(readmePath) ? codeBlocks(readFileSync(readmePath, 'utf8')) : []
  it('the package is built (blocks import it through its exports) and the README has code', () => {
    expect(existsSync(readmePath), `${readmePath} missing`).toBe(true)
    expect(existsSync(path.join(root, 'dist/src/node/index.js')), 'run `npm run build` first').toBe(true)
    expect(blocks.length).toBeGreaterThan(0)
  })
  for (const block of blocks) {
    const title = `${name}:${block.line} ${block.lang === '' ? '(no language)' : block.lang}`
    const runnable = SCRIPT_LANGS.has(block.lang) || SHELL_LANGS.has(block.lang)
    if (!runnable) continue
    if (block.noRun !== null) {
      // Every README code block must run: a marked one is a failure, never a silent skip.
      it(title, () => {
        expect.fail(`${title} is marked no-run (${block.noRun}): make it runnable, or show it in a text fence`)
      })
      continue
    }
    it(title, async () => {
      if (SCRIPT_LANGS.has(block.lang)) await runScriptBlock(block)
      else await runShellBlock(block)
    }, 5 * BLOCK_TIMEOUT_MS)
  }
})
