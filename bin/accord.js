#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so no build step is needed after `npm install`.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../server/cli.ts')
process.exitCode = await main(process.argv.slice(2))
