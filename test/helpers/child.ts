import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'

const children = new Set<ChildProcess>()
const root = path.resolve(import.meta.dirname, '../..')

/** Runs a TypeScript file in a child Node process; resolves with the child and its first stdout JSON line. */
export const runChild = (file: string, args: string[], timeoutMs = 20_000): Promise<{ child: ChildProcess, first: unknown }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, file), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let out = ''
    let err = ''
    const timer = setTimeout(() => { reject(new Error(`child ${file} said nothing within ${timeoutMs} ms: ${err}`)) }, timeoutMs)
    child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n')[0]
      if (out.includes('\n') && line !== undefined) {
        clearTimeout(timer)
        resolve({ child, first: JSON.parse(line) })
      }
    })
    child.on('exit', code => {
      clearTimeout(timer)
      if (!out.includes('\n')) reject(new Error(`child ${file} exited with ${code}: ${err}`))
    })
  })

/** SIGKILLs a child and waits until it is gone. */
export const kill = (child: ChildProcess): Promise<void> => new Promise(resolve => {
  if (child.exitCode !== null || child.signalCode !== null) {
    resolve()
    return
  }
  child.once('exit', () => { resolve() })
  child.kill('SIGKILL')
})

export const killChildren = async (): Promise<void> => {
  await Promise.all(Array.from(children).map(kill))
  children.clear()
}

/** Starts `node bin/accord.js <args>` and resolves once it prints its serving URL. */
export const spawnAccord = (args: string[], timeoutMs = 20_000): Promise<{ child: ChildProcess, url: string, port: number }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'bin/accord.js'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let out = ''
    let err = ''
    const timer = setTimeout(() => { reject(new Error(`accord ${args.join(' ')} did not start within ${timeoutMs} ms: ${err}`)) }, timeoutMs)
    child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const match = /accord serving on (wss?:\/\/[^\s]+:(\d+))/.exec(out)
      if (match !== null) {
        clearTimeout(timer)
        resolve({ child, url: match[1] as string, port: Number(match[2]) })
      }
    })
    child.on('exit', code => {
      clearTimeout(timer)
      reject(new Error(`accord ${args.join(' ')} exited with ${code}: ${err}`))
    })
  })

/** Runs `node bin/accord.js <args>` to completion. */
export const runAccord = (args: string[], timeoutMs = 60_000): Promise<{ code: number | null, stdout: string, stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'bin/accord.js'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`accord ${args.join(' ')} timed out`)) }, timeoutMs)
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('exit', code => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
