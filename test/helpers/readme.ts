/**
 * Reads the fenced code blocks of a markdown file for test/readme.test.ts, and turns the shell
 * lines of a block into commands the test can run.
 *
 *   const blocks = codeBlocks(readFileSync('README.md', 'utf8'))
 *   // [{ line: 28, lang: 'ts', code: '...', noRun: null }, ...]
 *
 * A block whose closest non-blank line before its fence is `<!-- no-run: reason -->` carries that
 * reason in `noRun`; test/readme.test.ts fails such a block with it (every block must run).
 */

export interface CodeBlock {
  /** 1-based line of the opening fence. */
  line: number
  /** The info string's first word, lower case ('' when none). */
  lang: string
  code: string
  /** The reason of a `<!-- no-run: reason -->` marker, or null. */
  noRun: string | null
}

export const SCRIPT_LANGS = new Set(['ts', 'typescript', 'mts', 'js', 'javascript', 'mjs'])
export const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console', 'zsh'])

const NO_RUN = /^<!--\s*no-run(?::\s*(.*?))?\s*-->$/

export const codeBlocks = (markdown: string): CodeBlock[] => {
  const lines = markdown.split(/\r?\n/)
  const blocks: CodeBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/.exec(lines[i] as string)
    if (open === null) continue
    const fence = open[1] as string
    const body: string[] = []
    let j = i + 1
    while (j < lines.length && !(lines[j] as string).trim().startsWith(fence)) body.push(lines[j++] as string)
    let k = i - 1
    while (k >= 0 && (lines[k] as string).trim() === '') k--
    const marker = k >= 0 ? NO_RUN.exec((lines[k] as string).trim()) : null
    blocks.push({ line: i + 1, lang: (open[2] as string).toLowerCase(), code: body.join('\n'), noRun: marker === null ? null : (marker[1] ?? 'no reason given') })
    i = j
  }
  return blocks
}

/** The commands of a shell block: continuation lines joined, comments and `$ ` prompts dropped. */
export const shellCommands = (code: string): Array<{ offset: number, command: string }> => {
  const out: Array<{ offset: number, command: string }> = []
  const lines = code.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const offset = i
    let text = lines[i] as string
    while (text.endsWith('\\') && i + 1 < lines.length) text = text.slice(0, -1).trimEnd() + ' ' + (lines[++i] as string).trim()
    // A comment starts at a # at the line start or after whitespace (not inside '...' or "...").
    let command = ''
    let quote: string | null = null
    for (let c = 0; c < text.length; c++) {
      const ch = text[c] as string
      if (quote !== null) {
        if (ch === quote) quote = null
      } else if (ch === '\'' || ch === '"') {
        quote = ch
      } else if (ch === '#' && (c === 0 || /\s/.test(text[c - 1] as string))) {
        break
      }
      command += ch
    }
    command = command.trim().replace(/^\$\s+/, '')
    if (command !== '') out.push({ offset, command })
  }
  return out
}

/**
 * Rewrites the README's default addresses (port 1234) to a test server's, and a server a block
 * starts itself on port 1234 to a free port (`port: 0`), so blocks never collide with a real one.
 */
export const rewriteAddresses = (text: string, port: number): string => text
  .replace(/\b(wss?|https?):\/\/(?:127\.0\.0\.1|localhost):1234\b/g, (_, scheme: string) => `${scheme}://127.0.0.1:${port}`)
  .replace(/\bport: 1234\b/g, 'port: 0')
