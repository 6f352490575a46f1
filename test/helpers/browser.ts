import http from 'node:http'
import { existsSync } from 'node:fs'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { build } from 'esbuild'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
export const hasChromium = (): boolean => existsSync(CHROMIUM)

const root = path.resolve(import.meta.dirname, '../..')

/** The package's browser build (dist/src/index.js) bundled as an app would (fails on Node built-ins). */
export const bundleSdk = async (): Promise<string> => {
  const result = await build({
    entryPoints: [path.join(root, 'dist/src/index.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent'
  })
  return result.outputFiles[0]!.text
}

/** Serves `files` (path -> [content type, body]) on 127.0.0.1; close() stops it. */
export const serveStatic = async (files: Record<string, [string, string]>): Promise<{ url: string, close: () => Promise<void> }> => {
  const server = http.createServer((req, res) => {
    const file = files[(req.url ?? '/').split('?')[0] as string]
    if (file === undefined) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': file[0] }).end(file[1])
  })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise(resolve => {
      server.closeAllConnections()
      server.close(() => { resolve() })
    })
  }
}

/** Debian's Chromium, headless, with the flags this machine's closed network needs. */
export const launchChromium = (): Promise<Browser> => chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
