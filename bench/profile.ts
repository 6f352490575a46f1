/**
 * Summarises V8 CPU profiles (`node --cpu-prof`, see `npm run bench -- --profile`): the functions
 * with the most self time and the most inclusive time, as % of the sampled time, plus the same
 * grouped by file. Usage: tsx bench/profile.ts <file.cpuprofile> [--top 25]
 *   or: tsx bench/profile.ts <file.cpuprofile> --callers <function name> [depth]: time by call path
 */
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number, columnNumber?: number }, children?: number[] }
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface Entry { name: string, ms: number, pct: number }
export interface Summary { totalMs: number, idlePct: number, self: Entry[], inclusive: Entry[], files: Entry[] }

const shortUrl = (url: string): string => {
  if (url === '') return ''
  const p = url.replace(/^file:\/\//, '')
  const nm = p.lastIndexOf('node_modules/')
  if (nm >= 0) return p.slice(nm + 'node_modules/'.length)
  const root = path.resolve(import.meta.dirname, '..') + '/'
  return p.startsWith(root) ? p.slice(root.length) : p
}

/**
 * tsx runs TypeScript minified onto one line, so profile positions are columns of generated code.
 * Its cache (<tmpdir>/tsx-<uid>/) keeps each transformed file with its source map: map the
 * column back to the original line (best effort: the newest cached version of the file).
 */
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const decodeLine = (mappings: string): Array<[number, number]> => {
  const out: Array<[number, number]> = []
  let col = 0
  let srcLine = 0
  for (const seg of (mappings.split(';')[0] ?? '').split(',')) {
    const vals: number[] = []
    let value = 0
    let shift = 0
    for (const ch of seg) {
      const digit = B64.indexOf(ch)
      value += (digit & 31) << shift
      if ((digit & 32) !== 0) shift += 5
      else {
        vals.push((value & 1) === 1 ? -(value >>> 1) : value >>> 1)
        value = 0
        shift = 0
      }
    }
    if (vals.length === 0) continue
    col += vals[0] as number
    if (vals.length >= 3) srcLine += vals[2] as number
    out.push([col, srcLine])
  }
  return out
}

const maps = new Map<string, Array<[number, number]> | null>()
const loadMaps = (): void => {
  if (maps.size > 0) return
  maps.set('', null)
  const dir = path.join(os.tmpdir(), `tsx-${process.getuid?.() ?? 0}`)
  let files: string[] = []
  try { files = readdirSync(dir) } catch { return }
  const newest = new Map<string, number>()
  for (const f of files) {
    try {
      const file = path.join(dir, f)
      const text = readFileSync(file, 'utf8')
      if (!text.startsWith('{"code"')) continue
      const { map } = JSON.parse(text) as { map?: { sources: string[], mappings: string } }
      const source = map?.sources[0]
      if (map === undefined || source === undefined) continue
      const mtime = statSync(file).mtimeMs
      if ((newest.get(source) ?? -1) > mtime) continue
      newest.set(source, mtime)
      maps.set(source, decodeLine(map.mappings))
    } catch {}
  }
}

const originalLine = (url: string, line: number, column: number): number => {
  if (line !== 0 || !url.startsWith('file://') || url.includes('node_modules')) return line + 1
  loadMaps()
  const segments = maps.get(url.slice('file://'.length))
  if (segments === undefined || segments === null) return line + 1
  let found = -1
  for (const [col, src] of segments) {
    if (col > column) break
    found = src
  }
  return found + 1
}

const frameName = (n: Node): string => {
  const f = n.callFrame
  const url = shortUrl(f.url)
  return `${f.functionName || '(anonymous)'}${url === '' ? '' : ` ${url}:${originalLine(f.url, f.lineNumber, f.columnNumber ?? 0)}`}`
}

const top = (m: Map<string, number>, total: number, n: number): Entry[] =>
  Array.from(m, ([name, ms]) => ({ name, ms, pct: 100 * ms / total })).sort((a, b) => b.ms - a.ms).slice(0, n)

export const summarise = (profile: Profile, n = 25): Summary => {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id)
  const selfMs = new Map<number, number>()
  profile.samples.forEach((id, i) => { selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000) })
  let total = 0
  let idle = 0
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const files = new Map<string, number>()
  for (const [id, ms] of selfMs) {
    const node = byId.get(id) as Node
    total += ms
    if (node.callFrame.functionName === '(idle)') idle += ms
    const name = frameName(node)
    self.set(name, (self.get(name) ?? 0) + ms)
    const file = shortUrl(node.callFrame.url) || node.callFrame.functionName
    files.set(file, (files.get(file) ?? 0) + ms)
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const key = frameName(byId.get(cur) as Node)
      if (seen.has(key)) continue
      seen.add(key)
      inclusive.set(key, (inclusive.get(key) ?? 0) + ms)
    }
  }
  const busy = total - idle
  self.delete('(idle)')
  inclusive.delete('(root)')
  inclusive.delete('(idle)')
  files.delete('(idle)')
  return { totalMs: total, idlePct: 100 * idle / total, self: top(self, busy, n), inclusive: top(inclusive, busy, n), files: top(files, busy, n) }
}

/** Who calls frames whose name contains `needle`: time by call path of `depth` callers. */
export const callers = (profile: Profile, needle: string, depth = 4, n = 15): Entry[] => {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id)
  const paths = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      if (!frameName(byId.get(cur) as Node).includes(needle)) continue
      const chain: string[] = []
      for (let up = parent.get(cur); up !== undefined && chain.length < depth; up = parent.get(up)) chain.push(frameName(byId.get(up) as Node))
      const key = chain.join(' < ')
      paths.set(key, (paths.get(key) ?? 0) + ms)
      total += ms
      break
    }
  })
  return top(paths, total, n)
}

export const formatSummary = (s: Summary): string => {
  const rows = (entries: Entry[]): string => entries.map(e => `  ${e.pct.toFixed(1).padStart(5)}%  ${e.ms.toFixed(0).padStart(7)} ms  ${e.name}`).join('\n')
  return `sampled ${s.totalMs.toFixed(0)} ms, idle ${s.idlePct.toFixed(1)}% (percentages below are of busy time)\n` +
    `self time:\n${rows(s.self)}\ninclusive time:\n${rows(s.inclusive)}\nby file (self):\n${rows(s.files)}\n`
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: tsx bench/profile.ts <file.cpuprofile> [--top 25]\n')
    process.exit(2)
  }
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile
  if (process.argv[3] === '--callers') {
    const rows = callers(profile, process.argv[4] ?? '', Number(process.argv[5] ?? 4))
    process.stdout.write(rows.map(e => `  ${e.pct.toFixed(1).padStart(5)}%  ${e.ms.toFixed(0).padStart(7)} ms  ${e.name}`).join('\n') + '\n')
  } else {
    const n = process.argv[3] === '--top' ? Number(process.argv[4]) : 25
    process.stdout.write(formatSummary(summarise(profile, n)))
  }
}
