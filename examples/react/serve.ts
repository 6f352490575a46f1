/**
 * The React example: an Accord sync server plus a page server for a React app using
 * `@accord-state/accord/react`, bundled in memory from the package's own browser build.
 *
 *   npm run build && node --import tsx examples/react/serve.ts [--port 1234] [--http-port 8080] [--data ./data]
 *
 * Serves on 127.0.0.1: `/` (index.html), `/app.js` (app.js bundled with React, the hooks from
 * dist/src/react/index.js and the SDK from dist/src/index.js, as an app's bundler would under the
 * `browser` condition) and `/config.js` (the sync server's URL). Open the printed URL in two tabs
 * (or add ?agent=someone-else&workflow=demo) and tick tasks in one: the other updates live.
 * `--port 0` / `--http-port 0` pick free ports. Ctrl-C or SIGTERM closes both servers.
 */
import http from 'node:http'
import path from 'node:path'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'
import { createServer } from '../../server/server.ts'

const usage = 'usage: serve.ts [--port 1234] [--http-port 8080] [--data ./data]'
let values: { port: string, 'http-port': string, data: string }
try {
  values = parseArgs({ options: { port: { type: 'string', default: '1234' }, 'http-port': { type: 'string', default: '8080' }, data: { type: 'string', default: './data' } } }).values
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
const here = import.meta.dirname
const dist = path.resolve(here, '../../dist/src')

// The package's subpaths point at its own build, as package.json `exports` resolve for users.
const bundle = await build({
  entryPoints: [path.join(here, 'app.js')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  write: false,
  logLevel: 'silent',
  external: ['/config.js'],
  alias: {
    '@accord-state/accord/react': path.join(dist, 'react/index.js'),
    '@accord-state/accord': path.join(dist, 'index.js')
  },
  define: { 'process.env.NODE_ENV': '"development"' }
}).catch((err: Error) => {
  console.error(`bundling the app failed (run npm run build first): ${err.message}`)
  process.exit(1)
})
const app = bundle.outputFiles[0]!.text

const accord = createServer({ port: syncPort, dataDir: values.data, log: { level: 'warn' } })
const wsUrl = (await accord.listen()).url

const files: Record<string, () => Promise<[type: string, body: string]>> = {
  '/': async () => ['text/html; charset=utf-8', await readFile(path.join(here, 'index.html'), 'utf8')],
  '/app.js': async () => ['text/javascript; charset=utf-8', app],
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
await new Promise<void>((resolve, reject) => {
  web.once('error', reject)
  web.listen(httpPort, '127.0.0.1', () => { resolve() })
}).catch(async (err: Error) => {
  console.error(`could not start the page server on port ${httpPort}: ${err.message}`)
  await accord.close()
  process.exit(1)
})
const pageUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`
console.log(`Accord sync server: ${wsUrl}`)
console.log(`Page server:        ${pageUrl} (app bundle ${(app.length / 1024).toFixed(0)} KiB)`)
console.log(`Open ${pageUrl}/?workflow=demo&agent=browser-1`)

let stopping = false
const stop = (): void => {
  if (stopping) process.exit(1)
  stopping = true
  web.closeAllConnections()
  Promise.all([new Promise<void>(resolve => { web.close(() => { resolve() }) }), accord.close()]).then(
    () => { process.exit(0) },
    (err: Error) => { console.error(`error while closing: ${err.message}`); process.exit(1) }
  )
}
process.on('SIGINT', () => { stop() })
process.on('SIGTERM', () => { stop() })
