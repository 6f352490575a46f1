#!/usr/bin/env node
// The `accord` command: runs the compiled CLI from dist/ (built by `npm run build`, which
// `npm install` runs through `prepare` in a clone), so no TypeScript loader is needed.
import { main } from '../dist/server/ops/cli.js'

process.exitCode = await main(process.argv.slice(2))
