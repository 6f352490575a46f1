/**
 * The data directory of `accord serve --workers N` on LevelDB. One worker keeps today's layout
 * (the LevelDB store is the directory itself), so a directory written before workers existed
 * serves unchanged with `--workers 1`. N > 1 workers each own one shard:
 *
 *   data/shards.json      {"format":"accord-shards/1","workers":4}   written before any shard
 *   data/shard-0 ... data/shard-3                                    one LevelDB store each
 *
 * A directory is never half-read: serving it with another worker count is refused with a message
 * naming `accord reshard`, and the offline commands (verify, rekey, reshard) read every shard.
 *
 *   const dirs = await prepareLayout('./data', 4)   // creates the layout when the directory is new
 *   const layout = await readLayout('./data')       // { kind: 'sharded', workers: 4, dirs: [...] }
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { z } from 'zod'
import { AccordError } from '../../src/model/errors.ts'
import { describeOpenError } from '../../src/store/open-errors.ts'

export const SHARDS_FILE = 'shards.json'
export const SHARDS_FORMAT = 'accord-shards/1'

export const ShardsManifestSchema = z.object({
  format: z.literal(SHARDS_FORMAT),
  workers: z.number().int().min(2)
})
export type ShardsManifest = z.infer<typeof ShardsManifestSchema>

/** What a data directory holds: nothing yet, one store (one worker), or N shards. */
export type Layout =
  | { kind: 'empty' }
  | { kind: 'single', workers: 1, dirs: [string] }
  | { kind: 'sharded', workers: number, dirs: string[] }

/** A data directory whose layout does not match the asked worker count, or is damaged. Exit 1. */
export class ShardLayoutError extends AccordError {
  readonly exitCode = 1
  constructor (message: string) {
    super('INVALID_REQUEST', message)
    this.name = 'ShardLayoutError'
  }
}

export const shardDir = (dataDir: string, index: number): string => path.join(dataDir, `shard-${index}`)

const isFile = async (file: string): Promise<boolean> => (await stat(file).catch(() => null))?.isFile() === true

export const readLayout = async (dataDir: string): Promise<Layout> => {
  const dir = path.resolve(dataDir)
  const manifestFile = path.join(dir, SHARDS_FILE)
  if (await isFile(manifestFile)) {
    let manifest: ShardsManifest
    try {
      manifest = ShardsManifestSchema.parse(JSON.parse(await readFile(manifestFile, 'utf8')))
    } catch (err) {
      throw new ShardLayoutError(`${manifestFile} is damaged (${(err as Error).message.split('\n')[0] ?? ''}): restore it as {"format":"${SHARDS_FORMAT}","workers":<the count the shards were written with>}`)
    }
    return { kind: 'sharded', workers: manifest.workers, dirs: Array.from({ length: manifest.workers }, (_, i) => shardDir(dir, i)) }
  }
  if (await isFile(path.join(dir, 'CURRENT'))) return { kind: 'single', workers: 1, dirs: [dir] }
  return { kind: 'empty' }
}

const describe = (layout: Exclude<Layout, { kind: 'empty' }>): string => layout.kind === 'single' ? 'one worker' : `${layout.workers} workers`

/**
 * The store directory of each of `workers` workers, creating the layout when `dataDir` holds no
 * store yet. Refuses a directory written with another worker count, before anything opens it.
 */
export const prepareLayout = async (dataDir: string, workers: number): Promise<string[]> => {
  const dir = path.resolve(dataDir)
  const layout = await readLayout(dir)
  if (layout.kind === 'empty') {
    if (workers === 1) return [dir]
    const entries = await readdir(dir).catch(() => [] as string[])
    if (entries.length > 0) throw new ShardLayoutError(`${dir} is not empty and holds no Accord store: use an empty or new directory for --workers ${workers}`)
    // The same words as a store that cannot open (a file in the way, no permission, a full disk).
    await mkdir(dir, { recursive: true })
      .then(() => writeFile(path.join(dir, SHARDS_FILE), JSON.stringify({ format: SHARDS_FORMAT, workers } satisfies ShardsManifest) + '\n'))
      .catch(async (err: unknown) => { throw await describeOpenError(dir, err) })
    return Array.from({ length: workers }, (_, i) => shardDir(dir, i))
  }
  if (layout.workers !== workers) {
    throw new ShardLayoutError(`${dir} was written by ${describe(layout)}, not ${workers}: serve it with --workers ${layout.workers}, or stop the server and run \`accord reshard --data ${dataDir} --workers ${workers}\` first`)
  }
  return layout.dirs
}
