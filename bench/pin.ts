/**
 * Pins a process and every thread of it to one core (Linux `taskset -a -p -c`), so the load
 * generator and the servers under test do not share a core; false where it cannot (no taskset).
 *
 *   const pinned = await pinToCore(load.child.pid, 1)
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

export const pinToCore = async (pid: number, core: number): Promise<boolean> => {
  try {
    await promisify(execFile)('taskset', ['-a', '-p', '-c', String(core), String(pid)])
    return true
  } catch {
    return false
  }
}
