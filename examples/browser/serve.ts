/**
 * The browser example in one command: an Accord sync server plus a small web server for the page.
 *
 *   node --import tsx examples/browser/serve.ts [--port 1234] [--http-port 8080] [--data ./data]
 *   (or: npm run example:browser -- --port 0 --http-port 0)
 *
 * It bundles the SDK (the package's browser build, dist/src/index.js) for browsers with esbuild, in memory, exactly like
 * `npm run build:browser` (minus the minification), starts an Accord server in this process and
 * serves, on 127.0.0.1:
 *
 *   /            examples/browser/index.html (read from disk on every request: edit and reload)
 *   /app.js      examples/browser/app.js
 *   /accord.js   the SDK bundle
 *   /config.js   `export default { url: 'ws://127.0.0.1:<port>' }`: the sync server the page uses
 *
 * It prints the page's URL; open it in two tabs (or add ?agent=someone-else) and run a Node agent
 * against the printed ws URL, e.g. `npx tsx examples/offline-agent.ts --workflow demo`.
 * `--port 0` / `--http-port 0` pick free ports; the ports actually bound are the ones printed.
 * Ctrl-C (SIGINT) or SIGTERM closes both servers (the sync server flushes to LevelDB first).
 */
import http from 'node:http'
import path from 'node:path'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'
import { createServer } from '../../server/server.ts'
import { LOG_LEVELS, type LogLevel } from '../../server/ops/log.ts'

const usage = 'usage: serve.ts [--port 1234] [--http-port 8080] [--data ./data] [--log-level warn]'

let values: { port: string, 'http-port': string, data: string, 'log-level': string }
try {
  values = parseArgs({
    options: {
      port: { type: 'string', default: '1234' },
      'http-port': { type: 'string', default: '8080' },
      data: { type: 'string', default: './data' },
      'log-level': { type: 'string', default: 'warn' }
    }
  }).values
} catch (err) {
  console.error(`${(err as Error).message}\n${usage}`)
  process.exit(2)
}
const toPort = (name: string, value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`--${name} must be a port number (0 picks a free one), got ${value}\n${usage}`)
    process.exit(2)
  }
  return n
}
const syncPort = toPort('port', values.port)
const httpPort = toPort('http-port', values['http-port'])
const logLevel = values['log-level'] as LogLevel
if (!LOG_LEVELS.includes(logLevel)) {
  console.error(`--log-level must be one of ${LOG_LEVELS.join(', ')}\n${usage}`)
  process.exit(2)
}

const here = import.meta.dirname
const root = path.resolve(here, '../..')

// 1. The package's own browser build (dist/src/index.js, what the `browser` condition of its `.`
//    export names), bundled with esbuild as an app's bundler would; it fails if anything would
//    still need a Node built-in. `npm install` builds dist/ (the `prepare` script).
const bundle = await build({
  entryPoints: [path.join(root, 'dist/src/index.js')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  write: false,
  logLevel: 'silent'
})
const sdk = bundle.outputFiles[0]!.text

// 2. The Accord sync server (logs are JSON lines on stderr).
const accord = createServer({ port: syncPort, dataDir: values.data, log: { level: logLevel } })
let wsUrl: string
try {
  wsUrl = (await accord.listen()).url
} catch (err) {
  console.error(`could not start the sync server on port ${syncPort}: ${(err as Error).message}`)
  process.exit(1)
}

// 3. The page. Only these paths exist; everything else is a 404.
const files: Record<string, () => Promise<[type: string, body: string]>> = {
  '/': async () => ['text/html; charset=utf-8', await readFile(path.join(here, 'index.html'), 'utf8')],
  '/index.html': async () => ['text/html; charset=utf-8', await readFile(path.join(here, 'index.html'), 'utf8')],
  '/app.js': async () => ['text/javascript; charset=utf-8', await readFile(path.join(here, 'app.js'), 'utf8')],
  '/accord.js': async () => ['text/javascript; charset=utf-8', sdk],
  '/config.js': async () => ['text/javascript; charset=utf-8', `export default ${JSON.stringify({ url: wsUrl })}\n`]
}
const web = http.createServer((req, res) => {
  const file = files[new URL(req.url ?? '/', 'http://localhost').pathname]
  if (file === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    return
  }
  file().then(
    ([type, body]) => { res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body) },
    (err: Error) => { res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`) }
  )
})
try {
  await new Promise<void>((resolve, reject) => {
    web.once('error', reject)
    web.listen(httpPort, '127.0.0.1', () => {
      web.off('error', reject)
      resolve()
    })
  })
} catch (err) {
  console.error(`could not start the page server on port ${httpPort}: ${(err as Error).message}`)
  await accord.close()
  process.exit(1)
}
const pageUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`

console.log(`Accord sync server: ${wsUrl} (data in ${path.resolve(values.data)})`)
console.log(`Page server:        ${pageUrl} (SDK bundle ${(sdk.length / 1024).toFixed(0)} KiB)`)
console.log(`Open ${pageUrl}/?workflow=demo&agent=browser-1`)
console.log('Ctrl-C stops both.')

// 4. Ctrl-C / SIGTERM: stop accepting, drop open page connections, flush and close the sync
//    server. A second signal while closing exits at once.
let stopping = false
const stop = (signal: string): void => {
  if (stopping) {
    console.log(`${signal} again: exiting without waiting`)
    process.exit(1)
  }
  stopping = true
  console.log(`${signal}: closing`)
  web.closeAllConnections()
  const webClosed = new Promise<void>(resolve => { web.close(() => { resolve() }) })
  Promise.all([webClosed, accord.close()]).then(
    () => {
      console.log('closed')
      process.exit(0)
    },
    (err: Error) => {
      console.error(`error while closing: ${err.message}`)
      process.exit(1)
    }
  )
}
process.on('SIGINT', () => { stop('SIGINT') })
process.on('SIGTERM', () => { stop('SIGTERM') })
