/**
 * Reading a workflow's whole history in tests (through the server module or over HTTP), and the
 * check every crash and cluster test makes of it: versions head..1, each once, each the child of
 * the one before.
 */
import { expect } from 'vitest'
import type { VersionRecord } from '../../src/node/index.ts'
import type { AccordServer } from '../../server/server.ts'
import { api } from './http.ts'

type Page = (before: number | undefined) => Promise<VersionRecord[]>

const allPages = async (page: Page): Promise<VersionRecord[]> => {
  const out: VersionRecord[] = []
  for (;;) {
    const next = await page(out.at(-1)?.version)
    out.push(...next)
    if (next.length === 0 || next.at(-1)?.version === 1) return out
  }
}

/** Every version record, newest first, through the server module. */
export const historyOf = (server: AccordServer, id: string): Promise<VersionRecord[]> =>
  allPages(before => server.history(id, { limit: 500, before }))

/** Every version record, newest first, over the HTTP API at `base` (http://host:port). */
export const historyOverHttp = (base: string, id: string): Promise<VersionRecord[]> =>
  allPages(async before => (await api(base, 'GET', `/v1/workflows/${id}/history?limit=1000${before === undefined ? '' : `&before=${before}`}`)).body as VersionRecord[])

export const expectGapless = (versions: Array<Pick<VersionRecord, 'version' | 'parentVersion'>>, message?: string): void => {
  const top = versions[0]?.version ?? 0
  expect(versions.map(v => v.version), message).toEqual(Array.from({ length: top }, (_, i) => top - i))
  expect(versions.every(v => v.parentVersion === v.version - 1), message).toBe(true)
}
