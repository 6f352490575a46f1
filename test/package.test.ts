/**
 * The package as a user gets it: `npm pack` (which builds through prepack), the tarball installed
 * into a temp app with production dependencies only, then plain `node` (no tsx), the installed
 * `accord` command, a strict NodeNext TypeScript consumer and an esbuild browser bundle.
 *
 *   npx vitest run test/package.test.ts     (a minute or two: npm pack + npm install)
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = path.resolve(import.meta.dirname, '..')
const FIXTURES = path.join(ROOT, 'test/fixtures/package')
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc')
const NAME = '@accord-state/accord'

/** The children's environment: no npm lifecycle variables, no loader flags (plain node). */
const env = (): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|NODE_OPTIONS$|VITEST|TSX)/i.test(k)) e[k] = v
  return e
}

interface Ran { code: number | null, stdout: string, stderr: string }
const run = (cmd: string, args: string[], cwd: string, timeoutMs = 240_000): Promise<Ran> => new Promise(resolve => {
  execFile(cmd, args, { cwd, env: env(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
    const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null
    resolve({ code, stdout, stderr })
  })
})
const ok = async (cmd: string, args: string[], cwd: string): Promise<string> => {
  const r = await run(cmd, args, cwd)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`)
  return r.stdout
}
/** npm prints the lifecycle scripts' output too: the JSON is the last top-level array. */
const npmJson = (stdout: string): Array<{ filename: string, files: Array<{ path: string }> }> =>
  JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1))

let work: string
let app: string

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'accord-pkg-'))
  app = path.join(work, 'app')
  const [packed] = npmJson(await ok('npm', ['pack', '--json', '--pack-destination', work], ROOT))
  await mkdir(app)
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'accord-pkg-app', private: true, type: 'module' }))
  await ok('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', path.join(work, packed?.filename as string)], app)
  for (const f of await readdir(FIXTURES)) await copyFile(path.join(FIXTURES, f), path.join(app, f))
}, 300_000)

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

describe('the packed tarball', () => {
  it('holds dist/src, dist/server, dist/ui (the inspector), bin, README.md, LICENSE and package.json only', async () => {
    const [dry] = npmJson(await ok('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT))
    const files = (dry?.files ?? []).map(f => f.path)
    const stray = files.filter(f => !/^(dist\/(src|server)\/.+\.(js|js\.map|d\.ts|d\.ts\.map)|dist\/ui\/(app\.(js|css)|worker\.js)|bin\/accord\.js|README\.md|LICENSE|package\.json)$/.test(f))
    expect(stray).toEqual([])
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/index.d.ts.map', 'dist/src/index.js.map', 'dist/src/node/index.js',
      'dist/server/index.js', 'dist/server/index.d.ts', 'dist/server/ops/cli.js', 'dist/ui/app.js', 'dist/ui/worker.js', 'bin/accord.js', 'README.md', 'LICENSE']) {
      expect(files).toContain(f)
    }
  })

  it('installs with production dependencies only: no pg, ioredis, TypeScript or tsx', () => {
    const has = (p: string): boolean => existsSync(path.join(app, 'node_modules', p))
    expect(has(NAME)).toBe(true)
    expect(['level', 'yjs', 'y-websocket', 'ws', 'zod'].filter(p => !has(p))).toEqual([])
    expect(['pg', 'ioredis', 'typescript', 'tsx', 'vitest', 'esbuild'].filter(has)).toEqual([])
  })
})

describe('the installed package in plain node', () => {
  it('the SDK and /server sync two agents over a temp LevelDB, and a new server reads the edits back', async () => {
    const out = await ok(process.execPath, ['sync.mjs', path.join(work, 'data-sync')], app)
    const state = { planner: 'planned', worker: 'working' }
    expect(JSON.parse(out)).toEqual({ a: state, b: state, reopened: state })
  })

  const loads = async (entry: string, engines = '', cwd = app): Promise<Record<string, string[] | string | null>> =>
    JSON.parse(await ok(process.execPath, [path.join(app, 'load-check.mjs'), path.join(work, `load-${Math.random()}.log`), entry, engines], cwd))
  const packages = (urls: string[]): string[] =>
    Array.from(new Set(urls.map(u => /node_modules\/((@[^/]+\/)?[^/]+)\//.exec(u)?.[1]).filter(p => p !== undefined))).sort()

  it('importing the SDK loads no server code and none of pg, ioredis, prom-client, jose', async () => {
    const { afterImport } = await loads(NAME) as { afterImport: string[] }
    expect(afterImport.some(u => u.includes('/dist/src/node/index.js'))).toBe(true)
    expect(afterImport.filter(u => u.includes('/dist/server/'))).toEqual([])
    expect(packages(afterImport).filter(p => ['pg', 'ioredis', 'prom-client', 'jose'].includes(p))).toEqual([])
  })

  it('/server loads pg and ioredis only when asked, and names each missing one in a typed error', async () => {
    const r = await loads(`${NAME}/server`, 'postgres,redis') as { afterImport: string[], afterRedis: string[], postgres: string, redis: string }
    expect(r.afterImport.some(u => u.includes('/dist/server/index.js'))).toBe(true)
    expect(packages(r.afterRedis).filter(p => p === 'pg' || p === 'ioredis')).toEqual([])
    expect(r.postgres).toBe('MISSING_DEPENDENCY')
    expect(r.redis).toBe('MISSING_DEPENDENCY')
  })

  it('with pg installed (the repository), /server loads it on the first openPostgresStore, not before', async () => {
    const r = await loads(pathToFileURL(path.join(ROOT, 'dist/server/index.js')).href, 'postgres', work) as { afterImport: string[], afterPostgres: string[], postgres: string }
    expect(packages(r.afterImport)).not.toContain('pg')
    expect(packages(r.afterImport)).not.toContain('ioredis')
    expect(r.postgres).not.toBe('MISSING_DEPENDENCY')
    expect(packages(r.afterPostgres)).toContain('pg')
  })
})

describe('the installed accord command', () => {
  const accord = (): string => path.join(app, 'node_modules/.bin/accord')

  it('--help prints the usage', async () => {
    const r = await run(accord(), ['--help'], app)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('serve')
    expect(r.stdout).toContain('verify')
  })

  it('serve stores what an agent writes, get reads it back, SIGTERM stops it with exit 0', async () => {
    const child = spawn(accord(), ['serve', '--port', '0', '--data', path.join(work, 'data-serve'), '--log-level', 'silent'], { cwd: app, env: env() })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = ''
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          const m = /accord serving on (ws:\/\/\S+)/.exec(out)
          if (m !== null) resolve(m[1] as string)
        })
        void exited.then(code => { reject(new Error(`accord serve exited ${code} before serving`)) })
      })
      const write = `import { openWorkflow } from '${NAME}'
const wf = openWorkflow('cli-flow', { url: process.argv[2], agentId: 'writer' })
await wf.whenSynced()
wf.update(d => { d.written = true })
// A second agent seeing the edit means the server stored it (durable before broadcast).
const check = openWorkflow('cli-flow', { url: process.argv[2], agentId: 'checker' })
while (check.state.written !== true) await new Promise(resolve => setTimeout(resolve, 10))
await Promise.all([wf.close(), check.close()])`
      await writeFile(path.join(app, 'write.mjs'), write)
      await ok(process.execPath, ['write.mjs', url], app)
      const got = await run(accord(), ['get', 'cli-flow', '--server', url, '--timeout', '10000'], app)
      expect(got.stderr).toBe('')
      expect(JSON.parse(got.stdout)).toEqual({ written: true })
    } finally {
      child.kill('SIGTERM')
    }
    expect(await exited).toBe(0)
  })

  it('serve --store postgres:// without pg installed exits 1 naming the package', async () => {
    const r = await run(accord(), ['serve', '--port', '0', '--store', 'postgres://127.0.0.1:9/none'], app, 30_000)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('MISSING_DEPENDENCY')
    expect(r.stderr).toContain('"pg"')
    expect(r.stderr).toContain('npm install pg')
  })
})

describe('the shipped declarations', () => {
  const typecheck = async (name: string, compilerOptions: object, source: string): Promise<Ran> => {
    const dir = path.join(app, name)
    await mkdir(dir, { recursive: true })
    await writeFile(path.join(dir, 'index.ts'), source)
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, ...compilerOptions },
      files: ['index.ts']
    }))
    return run(process.execPath, [TSC, '-p', dir], dir)
  }

  it('type a strict NodeNext consumer of the SDK, with state typed by the zod schema', async () => {
    // The ts-expect-error lines fail the check when the declarations lose the schema's type (any).
    const r = await typecheck('consumer-sdk', { lib: ['ES2022', 'DOM'], types: [], skipLibCheck: false }, `import { z } from 'zod'
import { openWorkflow, AccordError, type AccordErrorCode } from '${NAME}'
import { openWorkflow as openNode } from '${NAME}/node'

const schema = z.object({ tasks: z.array(z.object({ title: z.string(), done: z.boolean() })) })
const wf = openWorkflow('typed', { url: 'ws://127.0.0.1:1234', agentId: 'a', schema })
const titles: string[] = wf.state.tasks.map(t => t.title)
// @ts-expect-error title is a string, not a number
const wrong: number = wf.state.tasks.map(t => t.title)[0]
// @ts-expect-error no such key in the schema
wf.state.missing
wf.update(draft => { draft.tasks.push({ title: 'x', done: false }) })
// @ts-expect-error done must be a boolean
wf.update(draft => { draft.tasks.push({ title: 'x', done: 'no' }) })
const node = openNode('typed', { url: 'ws://127.0.0.1:1234', agentId: 'b', schema })
const done: boolean | undefined = node.state.tasks[0]?.done
const code: AccordErrorCode = new AccordError('NOT_FOUND', 'x').code
export { titles, wrong, done, code }
`)
    expect(r.stdout + r.stderr).toBe('')
    expect(r.code).toBe(0)
  })

  it('type a strict NodeNext consumer of /server (with @types/node, as a server app has)', async () => {
    // skipLibCheck: the server's declarations name types of ws and pg, which a consumer without
    // @types/ws and @types/pg cannot resolve (see the packaging notes).
    const r = await typecheck('consumer-server', { types: ['node'], typeRoots: [path.join(ROOT, 'node_modules/@types')], skipLibCheck: true },
      `import { createServer, createMemoryStore, type AccordServer, type ServerOptions } from '${NAME}/server'

const options: ServerOptions = { port: 0, store: createMemoryStore(), log: { level: 'silent' } }
const server: AccordServer = createServer(options)
const listening: Promise<{ url: string }> = server.listen()
// @ts-expect-error port is a number
createServer({ port: '1234' })
export { listening }
`)
    expect(r.stdout + r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
})

describe('the browser bundle of the SDK (esbuild)', () => {
  const NODE_ONLY = /(^|\/)node_modules\/(ws|level|classic-level|abstract-level|browser-level|pg|ioredis|prom-client|jose)\/|\/dist\/(server|src\/node|src\/store)\//
  const bundle = async (contents: string): Promise<{ inputs: string[], gzip: number, externals: string[] }> => {
    const r = await build({
      stdin: { contents, resolveDir: app, loader: 'js' },
      absWorkingDir: app,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      minify: true,
      write: false,
      metafile: true,
      logLevel: 'silent'
    })
    const text = r.outputFiles[0]?.contents ?? new Uint8Array()
    const externals = Object.values(r.metafile.outputs).flatMap(o => o.imports.map(i => i.path))
    return { inputs: Object.keys(r.metafile.inputs), gzip: gzipSync(text, { level: 9 }).length, externals }
  }
  let sdk: Awaited<ReturnType<typeof bundle>>
  let baseline: Awaited<ReturnType<typeof bundle>>

  beforeAll(async () => {
    sdk = await bundle(`export * from '${NAME}'`)
    baseline = await bundle('export * as Y from \'yjs\'\nexport { WebsocketProvider } from \'y-websocket\'')
  })

  it('holds no Node module: no ws, level, pg, ioredis, prom-client, jose, no server or Node SDK code, no node: builtins', () => {
    expect(sdk.inputs.some(i => i.includes('dist/src/index.js'))).toBe(true)
    expect(sdk.inputs.filter(i => NODE_ONLY.test(i))).toEqual([])
    expect(sdk.externals).toEqual([])
  })

  it('is at most the minified+gzip size of yjs + y-websocket + 25 KB', () => {
    // Fails until the smaller-bundle work (zod/mini) lands: the figures are in the message.
    const limit = baseline.gzip + 25 * 1024
    expect(sdk.gzip, `SDK ${sdk.gzip} B gzip, yjs + y-websocket ${baseline.gzip} B, limit ${limit} B`).toBeLessThanOrEqual(limit)
  })
})
