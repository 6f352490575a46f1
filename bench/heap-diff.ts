/**
 * What grew between two V8 heap snapshots (server-entry's `snapshot` command, written by the heap
 * scenario with --profile): retained-by-type totals by constructor (objects) or kind (arrays,
 * strings, closures, ...), as the difference after - before, largest first.
 * Usage: tsx bench/heap-diff.ts <before.heapsnapshot> <after.heapsnapshot> [per]
 * where `per` divides every figure (e.g. the number of workflows loaded in between).
 */
import { readFile } from 'node:fs/promises'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

export type Totals = Map<string, { count: number, bytes: number }>

export const totals = (s: Snapshot): Totals => {
  const f = s.snapshot.meta.node_fields
  const width = f.length
  const [iType, iName, iSize] = [f.indexOf('type'), f.indexOf('name'), f.indexOf('self_size')]
  const types = s.snapshot.meta.node_types[0]
  const out: Totals = new Map()
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType] as number] as string
    const name = type === 'object' || type === 'closure' ? `${type} ${s.strings[s.nodes[i + iName] as number]}` : `(${type})`
    const t = out.get(name) ?? { count: 0, bytes: 0 }
    t.count++
    t.bytes += s.nodes[i + iSize] as number
    out.set(name, t)
  }
  return out
}

export const diff = (before: Totals, after: Totals, per = 1, top = 25): Array<{ name: string, count: number, bytes: number }> =>
  Array.from(after, ([name, a]) => {
    const b = before.get(name) ?? { count: 0, bytes: 0 }
    return { name, count: (a.count - b.count) / per, bytes: (a.bytes - b.bytes) / per }
  }).sort((x, y) => y.bytes - x.bytes).slice(0, top)

export const formatDiff = (rows: ReturnType<typeof diff>): string =>
  rows.map(r => `${r.bytes.toFixed(0).padStart(9)} B  ${r.count.toFixed(1).padStart(8)}  ${r.name}`).join('\n') + '\n'

if (import.meta.url === `file://${process.argv[1]}`) {
  const [a, b, per] = process.argv.slice(2)
  if (a === undefined || b === undefined) {
    process.stderr.write('usage: tsx bench/heap-diff.ts <before.heapsnapshot> <after.heapsnapshot> [per]\n')
    process.exit(2)
  }
  const load = async (file: string): Promise<Totals> => totals(JSON.parse(await readFile(file, 'utf8')) as Snapshot)
  const rows = diff(await load(a), await load(b), Number(per ?? 1), 30)
  process.stdout.write(`bytes and objects added${per === undefined ? '' : ` per ${per}`} (self sizes):\n` + formatDiff(rows))
}
