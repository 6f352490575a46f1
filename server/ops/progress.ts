/**
 * Progress of long commands (backup, restore-backup, verify, rekey) on a terminal: one line on
 * stderr, rewritten in place at most every 100 ms. When stderr is not a terminal (piped, CI,
 * scripts) nothing is written, so stdout keeps only the machine-readable result.
 *
 *   const progress = createProgress('verify')
 *   progress.update({ done: 3, total: 10, unit: 'workflows' })
 *   progress.end()
 */
export interface ProgressState {
  done: number
  total?: number
  unit: string
  bytes?: number
}

export interface Progress {
  update: (state: ProgressState) => void
  end: () => void
}

const size = (bytes: number): string =>
  bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`

export const formatProgress = (label: string, p: ProgressState): string =>
  `${label}: ${p.done}${p.total === undefined ? '' : ` / ${p.total}`} ${p.unit}${p.bytes === undefined ? '' : `, ${size(p.bytes)}`}`

export const createProgress = (label: string, stream: NodeJS.WriteStream = process.stderr): Progress => {
  if (stream.isTTY !== true) return { update: () => {}, end: () => {} }
  let last = 0
  let shown = false
  let pending: ProgressState | null = null
  const draw = (p: ProgressState): void => {
    stream.write(`\r\x1b[2K${formatProgress(label, p)}`)
    shown = true
    last = Date.now()
    pending = null
  }
  return {
    update: p => {
      pending = p
      if (Date.now() - last >= 100) draw(p)
    },
    end: () => {
      if (pending !== null) draw(pending)
      if (shown) stream.write('\n')
    }
  }
}
