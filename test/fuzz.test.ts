/**
 * Hostile input, fuzzed: at least 10,000 random and mutated y-websocket protocol messages over
 * real WebSockets to a real server (LevelDB in a temp dir), plus invalid workflow ids in the URL
 * and malformed requests to the HTTP API, while an honest stock y-websocket client and an honest
 * SDK agent keep working on their own workflow the whole time.
 *
 * Properties: nothing throws out of the server (no uncaught exception or unhandled rejection in
 * this process), /healthz stays 200, no HTTP request gets a 5xx, an offending connection is the
 * only one closed and only with a documented close code, connections and loaded workflows return
 * to the baseline, the heap stays bounded, the honest peers never disconnect and their state is
 * exactly their own edits (live, and as persisted after a restart), and every fuzzed workflow
 * loads after a restart, replayed from its log to the very state it had live.
 *
 * The second test pins a bug the fuzz found: Yjs takes clocks beyond 2^53 (and empty structs)
 * that it cannot encode again, after which the workflow could not sync anyone, and the failing
 * sync reply was an unhandled rejection that ended the server process.
 *
 * Seeded: the seed is printed; ACCORD_FUZZ_SEED=<seed> replays the same message sequences.
 * ACCORD_FUZZ_MESSAGES overrides the number of protocol messages (default 10,000).
 */
import http from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { useServers } from './helpers/use-servers.ts'
import { sdkAgent, stockClient } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { createRandom, seedFrom, type Random } from './helpers/random.ts'
import { PROBE, brokenJson, buildCorpus, awareness, concat, framed, message, mutate, randomJson, sync, varUint, type Corpus } from './helpers/fuzz-input.ts'

const { start, restart } = useServers()

const MAX = 64 * 1024
const TOTAL = Number(process.env.ACCORD_FUZZ_MESSAGES ?? 10_000)
const WS_WORKERS = 8
const HTTP_WORKERS = 3
const HTTP_REQUESTS = 600
const HONEST = 'wf-honest'
const HONEST_EVERY = 100
const FUZZ_IDS = ['fuzz-0', 'fuzz-1', 'fuzz-2', 'fuzz-3', 'fuzz.4', 'fuzz:5']
const INVALID_IDS = [
  '', '-leading-dash', '.hidden', 'a/b', 'a%2Fb', '%ZZ', '%', '%E0%A4%A', 'x'.repeat(129), 'x'.repeat(5000),
  '%00', 'sp%20ace', '%F0%9F%92%A9', '..', '_under', 'tab%09', '%C0%AF', 'new%0Aline', 'ü'
]
/** Close codes a hostile connection may get (README, close codes): malformed, too large, ws's hard ceiling, deleted. */
const ALLOWED_CLOSES = new Set([4400, 4413, 1009, 4404])

// ---------------------------------------------------------------------------------------------
// Messages

const ROOT_TYPES = [0, 1, 2, 3]
const UNKNOWN_TYPES = [4, 5, 7, 42, 99, 105, 127, 128, 255, 300, 2 ** 21, 2 ** 32, 2 ** 53 - 1]
const EXTENSION_TYPES = [100, 101, 102, 103, 104]

interface Case { label: string, data: Uint8Array | string }

/**
 * Messages that never change a document whatever the server does with them (it may close the
 * connection or ignore them), so they may also be aimed at the honest workflow.
 */
const harmlessCase = (r: Random, c: Corpus): Case => {
  const kind = r.weighted<string>([
    [6, 'truncated varint'], [6, 'huge length prefix'], [5, 'unknown message type'], [4, 'unknown sync type'],
    [3, 'extension without announcing it'], [4, 'garbage state vector'], [3, 'mutated state vector'],
    [5, 'garbage awareness'], [5, 'mutated awareness'], [2, 'valid awareness'], [2, 'query awareness'],
    [2, 'auth message'], [2, 'text frame'], [1, 'empty frame'], [1, 'oversize frame'], [0.3, 'frame above the hard ceiling']
  ])
  switch (kind) {
    case 'truncated varint': {
      const cont = Uint8Array.from({ length: r.range(1, 12) }, () => 0x80 | r.int(128))
      return { label: kind, data: r.pick([cont, concat(varUint(0), cont), concat(varUint(0), varUint(r.pick([0, 1, 2])), cont), concat(varUint(1), cont)]) }
    }
    case 'huge length prefix': {
      // A length larger than what follows: the decoder must refuse it before anything is applied.
      const body = r.bytes(r.int(32))
      const len = r.pick([body.length + 1, body.length + r.range(2, 1000), 2 ** 20, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1])
      const header = r.pick([concat(varUint(0), varUint(r.pick([0, 1, 2]))), varUint(1)])
      return { label: kind, data: concat(header, varUint(len), body) }
    }
    case 'unknown message type': return { label: kind, data: concat(varUint(r.pick(UNKNOWN_TYPES)), r.bytes(r.int(32))) }
    case 'unknown sync type': return { label: kind, data: concat(varUint(0), varUint(r.pick([3, 4, 9, 127, 128, 2 ** 20])), r.bytes(r.int(16))) }
    case 'extension without announcing it': return { label: kind, data: framed(r.pick(EXTENSION_TYPES), r.chance(0.5) ? r.int(100) : null, JSON.stringify(randomJson(r))) }
    case 'garbage state vector': return { label: kind, data: sync(0, r.bytes(r.int(48))) }
    case 'mutated state vector': return { label: kind, data: sync(0, mutate(r, r.pick(c.stateVectors), c.stateVectors)) }
    case 'garbage awareness': {
      const states = message(enc => {
        const n = r.range(1, 4)
        encoding.writeVarUint(enc, n)
        for (let i = 0; i < n; i++) {
          encoding.writeVarUint(enc, r.int(2 ** 31))
          encoding.writeVarUint(enc, r.int(2 ** 20))
          encoding.writeVarString(enc, r.chance(0.5) ? brokenJson(r) : JSON.stringify(randomJson(r)))
        }
      })
      return { label: kind, data: awareness(r.chance(0.3) ? r.bytes(r.int(40)) : states) }
    }
    case 'mutated awareness': return { label: kind, data: awareness(mutate(r, r.pick(c.awareness), c.awareness)) }
    case 'valid awareness': return { label: kind, data: awareness(r.pick(c.awareness)) }
    case 'query awareness': return { label: kind, data: concat(varUint(3), r.bytes(r.int(4))) }
    case 'auth message': return { label: kind, data: concat(varUint(2), r.bytes(r.int(16))) }
    case 'text frame': return { label: kind, data: r.chance(0.5) ? brokenJson(r) : Buffer.from(PROBE).toString('latin1') }
    case 'empty frame': return { label: kind, data: new Uint8Array(0) }
    case 'oversize frame': return { label: kind, data: concat(sync(2, new Uint8Array(MAX + r.range(1, MAX - 16)))) }
    default: return { label: kind, data: new Uint8Array(2 * MAX + r.range(1, 4096)) }
  }
}

/** Anything, including updates that may apply, partly apply or break the decoder half way. */
const anyCase = (r: Random, c: Corpus, extended: boolean): Case => {
  const kind = r.weighted<string>([
    [8, 'harmless'], [12, 'mutated update'], [3, 'valid update'], [3, 'garbage update'], [2, 'v2 update sent as v1'],
    [3, 'mutated message'], [2, 'random bytes'], [extended ? 4 : 0, 'extension request'], [extended ? 2 : 0, 'extension describe']
  ])
  switch (kind) {
    case 'harmless': return harmlessCase(r, c)
    case 'mutated update': return { label: kind, data: sync(r.pick([1, 2, 2]), mutate(r, r.pick(c.updates), c.updates)) }
    case 'valid update': return { label: kind, data: sync(r.pick([1, 2]), r.pick(c.updates)) }
    case 'garbage update': return { label: kind, data: sync(r.pick([1, 2]), r.bytes(r.int(64))) }
    case 'v2 update sent as v1': return { label: kind, data: sync(2, r.pick(c.v2)) }
    case 'mutated message': return { label: kind, data: mutate(r, sync(r.pick([0, 1, 2]), r.pick(c.updates)), c.updates) }
    case 'random bytes': return { label: kind, data: concat(varUint(r.pick(ROOT_TYPES)), r.bytes(r.int(64))) }
    case 'extension request': {
      const methods = ['history', 'stateAt', 'diff', 'createSnapshot', 'listSnapshots', 'deleteSnapshot', 'restore', 'fork', 'conflicts',
        'subscribe', 'unsubscribe', 'violations', 'claimTask', 'completeTask', 'failTask', 'nope', '__proto__', 'constructor']
      const params = randomJson(r) as Record<string, unknown>
      if (typeof params === 'object' && params !== null && !Array.isArray(params) && r.chance(0.5)) {
        // Never the honest workflow: these requests may write (restore, snapshots, tasks).
        params.workflowId = r.pick([...FUZZ_IDS, ...INVALID_IDS, 42, null])
      }
      const body = r.chance(0.2) ? brokenJson(r) : JSON.stringify({ method: r.pick(methods), params })
      return { label: kind, data: framed(100, r.int(2 ** 20), body) }
    }
    default: return { label: kind, data: framed(102, null, r.chance(0.3) ? brokenJson(r) : JSON.stringify({ description: randomJson(r), meta: randomJson(r) })) }
  }
}

// ---------------------------------------------------------------------------------------------
// A raw socket with an exact "processed" signal

interface Closed { code: number, reason: string }

/** Whether the server reads `data` as a sync step 1 (which it answers with a sync step 2). */
const isSyncStep1 = (data: Uint8Array | string): boolean => {
  if (typeof data === 'string') return false
  try {
    const d = decoding.createDecoder(data)
    return decoding.readVarUint(d) === 0 && decoding.readVarUint(d) === 0
  } catch {
    return false
  }
}

class RawSocket {
  readonly ws: WebSocket
  closed: Closed | null = null
  readonly whenClosed: Promise<Closed>
  readonly whenOpen: Promise<boolean>
  /** What this connection sent, for the failure message. */
  private readonly sent: string[] = []
  private probes = 0
  private replies = 0
  private waiter: (() => void) | null = null

  constructor (url: string) {
    this.ws = new WebSocket(url, { maxPayload: 64 * 1024 * 1024 })
    this.ws.on('error', () => {})
    this.whenOpen = new Promise(resolve => {
      this.ws.once('open', () => { resolve(true) })
      this.ws.once('close', () => { resolve(false) })
    })
    this.whenClosed = new Promise(resolve => {
      this.ws.once('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() }
        this.waiter?.()
        resolve(this.closed)
      })
    })
    this.ws.on('message', (data: Buffer) => {
      // Only sync step 2 answers our probes: relays are updates, presence is awareness.
      try {
        const d = decoding.createDecoder(new Uint8Array(data))
        if (decoding.readVarUint(d) === 0 && decoding.readVarUint(d) === 1) {
          this.replies++
          this.waiter?.()
        }
      } catch {}
    })
  }

  /**
   * Sends `data`, then a probe; resolves 'ok' once the server answered the probe, or with the
   * close. A sync step 1 among the fuzz messages gets a sync step 2 too when the server takes it.
   */
  async roundTrip (data: Uint8Array | string, what: string): Promise<'ok' | Closed> {
    if (this.closed !== null) return this.closed
    this.sent.push(`${what}: ${typeof data === 'string' ? JSON.stringify(data.slice(0, 200)) : Buffer.from(data.subarray(0, 2000)).toString('base64')}`)
    this.ws.send(data)
    this.ws.send(PROBE)
    this.probes += isSyncStep1(data) ? 2 : 1
    const target = this.probes
    const deadline = Date.now() + 20_000
    while (this.replies < target && this.closed === null) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`the server neither answered nor closed after: ${what}; this connection sent (base64):\n${this.sent.join('\n')}`))
        }, Math.max(1, deadline - Date.now()))
        this.waiter = () => {
          clearTimeout(timer)
          this.waiter = null
          resolve()
        }
      })
    }
    return this.replies >= target && this.closed === null ? 'ok' : this.closed as unknown as Closed
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface HttpResult { status: number, body: string, contentType: string }

const httpRequest = (port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<HttpResult | { error: string }> =>
  new Promise(resolve => {
    let req: http.ClientRequest
    try {
      req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, res => {
        const contentType = String(res.headers['content-type'] ?? '')
        if (contentType.startsWith('text/event-stream')) {
          // A change stream stays open: its headers are the answer.
          res.destroy()
          resolve({ status: res.statusCode ?? 0, body: '', contentType })
          return
        }
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => { chunks.push(c) })
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), contentType }) })
        res.on('error', err => { resolve({ error: err.message }) })
      })
    } catch (err) {
      resolve({ error: `client refused to send: ${(err as Error).message}` })
      return
    }
    req.on('error', err => { resolve({ error: err.message }) })
    req.setTimeout(20_000, () => { req.destroy(new Error('timed out')) })
    // Every body is framed by its length, whatever the method (GET and OPTIONS get no chunking by default).
    if (body !== undefined) req.setHeader('content-length', Buffer.byteLength(body))
    req.end(body)
  })

const STANDARD_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'])
const CONTENT_TYPES = ['application/json', 'application/json-patch+json', 'application/json-patch+json; charset=utf-8', 'text/plain', '', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', '*/*']

interface HttpCase { method: string, path: string, headers: Record<string, string>, body?: Buffer | string, huge?: boolean }

const httpCase = (r: Random): HttpCase => {
  const wid = r.chance(0.75) ? r.pick(FUZZ_IDS) : r.pick(INVALID_IDS.filter(id => id !== '' && !/[^\x21-\x7e]/.test(id)))
  const headers: Record<string, string> = {}
  if (r.chance(0.7)) headers['content-type'] = r.pick(CONTENT_TYPES)
  if (r.chance(0.2)) headers['x-accord-description'] = r.pick(['%E0%A4%A', '%', '%ZZ', 'plain', encodeURIComponent('ünïcode'), 'x'.repeat(3000)])
  if (r.chance(0.1)) headers['x-accord-run-id'] = r.pick(['', 'x'.repeat(5000), 'run-1'])
  if (r.chance(0.15)) headers['if-match'] = r.pick(['"0"', '"abc"', '*', 'W/"1"', '"999999999999999999999"'])
  if (r.chance(0.1)) headers['if-none-match'] = r.pick(['"0"', '"1"', '*'])
  if (r.chance(0.1)) headers['x-accord-agent'] = r.pick(['', 'x'.repeat(1000), 'agent'])
  const body = (): string => r.weighted<() => string>([
    [4, () => brokenJson(r)],
    [4, () => JSON.stringify(randomJson(r))],
    [1, () => '{"a":'.repeat(3000) + '1' + '}'.repeat(3000)],
    [1, () => '['.repeat(10_000) + ']'.repeat(10_000)]
  ])()
  const sub = r.pick(['', '/history', '/diff', '/snapshots', '/snapshots/' + r.pick(['x', '%ZZ', '1']), '/restore', '/fork', '/promote', '/discard',
    '/conflicts', '/violations', '/runtime', '/agents/' + r.pick(['a', '%ZZ', 'x'.repeat(300)]) + '/transition', '/agents/a/soft-reset',
    '/pause', '/resume', '/tasks', '/tasks/claim', '/tasks/' + r.pick(['t1', '%E0']) + '/complete', '/tasks/t1/fail', '/events', '/nope'])
  const query = r.chance(0.3) ? '?' + r.pick(['version=-1', 'version=abc', 'version=1e400', 'version=99999999', 'limit=0&before=-5', 'limit=abc', 'from=1&to=zz', 'after=%ZZ', 'path=%', 'version=0x10', 'limit=1e9']) : ''
  const kind = r.weighted<string>([[5, 'post-create'], [6, 'patch'], [6, 'get'], [5, 'post-sub'], [1, 'delete'], [1, 'huge'], [1, 'odd method'], [1, 'odd path']])
  switch (kind) {
    case 'post-create': {
      const create = r.chance(0.5) ? JSON.stringify({ workflowId: r.chance(0.6) ? r.pick([...FUZZ_IDS, ...INVALID_IDS]) + (r.chance(0.5) ? '-' + r.int(1000) : '') : randomJson(r), state: randomJson(r) }) : body()
      return { method: 'POST', path: '/v1/workflows', headers, body: create }
    }
    case 'patch': {
      if (r.chance(0.8)) headers['content-type'] = r.pick(CONTENT_TYPES)
      const ops = Array.from({ length: r.range(0, 4) }, () => ({
        op: r.pick(['add', 'remove', 'replace', 'move', 'copy', 'test', 'nope', 42]),
        path: r.pick(['', '/', '/a', '/a/b', '/tasks/-', '/tasks/0', '/tasks/99', '/~2', '/__proto__/x', '/constructor/prototype', 'no-slash', '/a/' + 'b/'.repeat(200),
          '/list/0', '/list/1', '/list/2', '/list/3', '/list/-', '/list/01', '/list/x']),
        ...(r.chance(0.6) ? { value: randomJson(r) } : {}),
        ...(r.chance(0.3) ? { from: r.pick(['/a', '/tasks/0', '', '/zz', '/list/0', '/list/1', '/owner']) } : {})
      }))
      return { method: 'PATCH', path: `/v1/workflows/${wid}${query}`, headers, body: r.chance(0.6) ? JSON.stringify(ops) : body() }
    }
    case 'get': return { method: 'GET', path: `/v1/workflows/${r.chance(0.3) ? HONEST : wid}${r.pick(['', '/history', '/diff', '/snapshots', '/conflicts', '/violations', '/runtime', '/tasks', '/events'])}${query}`, headers }
    case 'post-sub': return { method: 'POST', path: `/v1/workflows/${wid}${sub}${query}`, headers, body: r.chance(0.2) ? undefined : body() }
    case 'delete': return { method: 'DELETE', path: `/v1/workflows/${wid}${r.pick(['', '/snapshots/x'])}`, headers }
    case 'huge': {
      // The two routes that read a body before anything else.
      const post = r.chance(0.5)
      return { method: post ? 'POST' : 'PATCH', path: post ? '/v1/workflows' : `/v1/workflows/${r.pick(FUZZ_IDS)}`, headers: { 'content-type': 'application/json-patch+json' }, body: '[' + '"x",'.repeat(MAX / 4 + r.int(MAX)) + '"x"]', huge: true }
    }
    case 'odd method': return { method: r.pick(['PUT', 'OPTIONS', 'HEAD', 'TRACE', 'FOO', 'CONNECTX']), path: `/v1/workflows/${wid}`, headers, body: r.chance(0.5) ? body() : undefined }
    default: return { method: r.pick(['GET', 'POST']), path: r.pick(['/v1/', '/v1//', '/v1/workflows/', '/v1/workflows//history', '/v1/workflows/a/b/c/d/e', '/v1/%ZZ', '/v1/workflows/' + 'a'.repeat(8000), '/v1/workflows/x/tasks/%E0%A4%A/complete']) + query, headers, body: body() }
  }
}

// ---------------------------------------------------------------------------------------------

/** JSON text with object keys sorted at every level. */
const canonical = (value: unknown): string => JSON.stringify(value, (_key, v: unknown) =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v)

const forceGc = (): (() => void) | null => {
  try {
    v8.setFlagsFromString('--expose-gc')
    return vm.runInNewContext('gc') as () => void
  } catch {
    return null
  }
}

describe('fuzzing the sync protocol and the HTTP API', () => {
  it(`${TOTAL} hostile messages and ${HTTP_REQUESTS} malformed requests: the server and its honest peers are unaffected`, async () => {
    const seed = seedFrom('ACCORD_FUZZ_SEED', 'fuzz')
    const tag = `(seed ${seed}, ACCORD_FUZZ_SEED=${seed})`
    const processErrors: string[] = []
    const onUncaught = (err: unknown): void => { processErrors.push(`uncaught exception: ${(err as Error)?.stack ?? String(err)}`) }
    const onRejection = (err: unknown): void => { processErrors.push(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`) }
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onRejection)
    const gc = forceGc()
    const started = Date.now()
    try {
      const srv = await start({ maxMessageSize: MAX })
      const base = srv.url.replace(/^ws/, 'http')
      const corpus = buildCorpus(createRandom(seed))

      // The honest peers, connected the whole time.
      const stock = stockClient(srv.url, HONEST, { agent: 'honest-stock' })
      const agent = sdkAgent(srv.url, HONEST, 'honest-sdk')
      await Promise.all([stock.synced(), agent.whenSynced()])
      const disconnects: string[] = []
      stock.provider.on('status', ({ status }: { status: string }) => { if (status !== 'connected') disconnects.push(`stock client ${status}`) })
      agent.provider.on('status', ({ status }: { status: string }) => { if (status !== 'connected') disconnects.push(`sdk agent ${status}`) })
      agent.onRecovery(event => { disconnects.push(`sdk agent recovery: ${event.type}`) })
      const baselineConnections = srv.server.connectionCount()
      expect(baselineConnections, tag).toBe(2)
      gc?.()
      const heapBefore = process.memoryUsage().heapUsed

      let fuzzing = true
      let stop = false
      let sent = 0
      let honestRounds = 0
      const expectedState = (): unknown => {
        const stockMap: Record<string, number> = {}
        const log: unknown[] = []
        for (let i = 1; i <= honestRounds; i++) {
          stockMap[`r${i}`] = i
          log.push({ nested: { tags: ['a', String(i)], value: { i } }, round: i })
        }
        return honestRounds === 0 ? {} : { sdk: { last: honestRounds, log }, stock: stockMap }
      }
      // Both honest peers edit in rounds and must see each other's edits, while the fuzz runs.
      const honest = (async () => {
        const stockRoot = stock.doc.getMap('state')
        while (!stop && (fuzzing || honestRounds < 5)) {
          // A round per HONEST_EVERY fuzz messages, so the honest peers work throughout the fuzz.
          await waitFor(() => stop || !fuzzing || sent >= honestRounds * HONEST_EVERY, { timeoutMs: 120_000, what: `fuzz progress ${tag}` })
          if (stop) return
          const i = ++honestRounds
          agent.update(d => {
            const sdk = (d.sdk ??= { log: [] }) as { log: unknown[], last?: number }
            sdk.log.push({ nested: { tags: ['a', String(i)], value: { i } }, round: i })
            sdk.last = i
          })
          stock.doc.transact(() => {
            if (!(stockRoot.get('stock') instanceof Y.Map)) stockRoot.set('stock', new Y.Map())
            ;(stockRoot.get('stock') as Y.Map<number>).set(`r${i}`, i)
          })
          const want = canonical(expectedState())
          await waitFor(() => canonical(agent.state) === want && canonical(stock.json()) === want,
            { timeoutMs: 20_000, what: `honest round ${i} to sync both ways ${tag}` }).catch((err: Error) => {
            throw new Error(`${err.message}\nwant  ${want}\nsdk   ${JSON.stringify(agent.state)}\nstock ${JSON.stringify(stock.json())}`)
          })
          const health = await fetch(base + '/healthz')
          expect(health.status, `/healthz during the fuzz ${tag}`).toBe(200)
        }
      })()

      // WebSocket fuzzers: each keeps a connection while the server tolerates its messages.
      const stats = new Map<string, Map<string, number>>()
      const count = (label: string, outcome: string): void => {
        const byOutcome = stats.get(label) ?? new Map<string, number>()
        byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1)
        stats.set(label, byOutcome)
      }
      const unexpected: string[] = []
      let connectionsOpened = 0
      const perWorker = Math.ceil(TOTAL / WS_WORKERS)
      const wsWorker = async (w: number): Promise<void> => {
        const r = createRandom(seed + 7919 * (w + 1))
        let mine = 0
        while (mine < perWorker && !stop) {
          if (r.chance(0.04)) {
            // An invalid workflow id in the URL: refused before any message is read.
            const bad = r.pick(INVALID_IDS)
            const sock = new RawSocket(`${srv.url}/${bad}`)
            const closed = await sock.whenClosed
            count('invalid workflow id', String(closed.code))
            if (closed.code !== 4400) unexpected.push(`invalid id ${JSON.stringify(bad)}: close ${closed.code} ${closed.reason}`)
            continue
          }
          const target = r.chance(0.35) ? HONEST : r.pick(FUZZ_IDS)
          const extended = target !== HONEST && r.chance(0.3)
          const sock = new RawSocket(`${srv.url}/${target}${extended ? '?accord=1' : ''}`)
          connectionsOpened++
          if (!await sock.whenOpen) throw new Error(`connection to ${target} refused: ${JSON.stringify(sock.closed)} ${tag}`)
          const budget = r.range(1, 60)
          for (let k = 0; k < budget && mine < perWorker; k++) {
            const c = target === HONEST ? harmlessCase(r, corpus) : anyCase(r, corpus, extended)
            mine++
            sent++
            const outcome = await sock.roundTrip(c.data, `${c.label} to ${target} ${tag}`)
            if (outcome === 'ok') {
              count(c.label, 'tolerated')
              continue
            }
            count(c.label, String(outcome.code))
            const hardCeiling = c.label === 'frame above the hard ceiling' && outcome.code === 1006
            if (!ALLOWED_CLOSES.has(outcome.code) && !hardCeiling) unexpected.push(`${c.label} to ${target}: close ${outcome.code} ${outcome.reason}`)
            break
          }
          if (sock.closed === null) {
            if (r.chance(0.2)) sock.ws.terminate()
            else sock.ws.close()
            await sock.whenClosed
          }
        }
      }

      // HTTP fuzzers: malformed bodies, wrong content types, huge bodies, invalid ids.
      const httpFailures: string[] = []
      let httpSent = 0
      const httpWorker = async (w: number): Promise<void> => {
        const r = createRandom(seed + 104_729 * (w + 1))
        for (let i = 0; i < HTTP_REQUESTS / HTTP_WORKERS && !stop; i++) {
          const c = httpCase(r)
          httpSent++
          const res = await httpRequest(srv.port, c.method, c.path, c.headers, c.body)
          const what = `${c.method} ${c.path.slice(0, 120)} [${JSON.stringify(c.headers).slice(0, 200)}] ${String(c.body ?? '').slice(0, 120)}`
          if ('error' in res) {
            count(`http ${c.method}`, 'socket error')
            // A huge body may be cut off by the server once it is over the cap; anything else must get an answer.
            if (c.huge !== true && !res.error.startsWith('client refused')) httpFailures.push(`${what}: ${res.error}`)
            continue
          }
          count(`http ${c.method}`, String(res.status))
          if (res.status >= 500) httpFailures.push(`${what}: ${res.status} ${res.body.slice(0, 300)}`)
          if (c.huge === true && res.status !== 413) httpFailures.push(`${what}: a body over the cap got ${res.status}`)
          // Node's HTTP parser answers unknown methods itself (400, no body) before Accord sees them.
          if (res.status >= 400 && STANDARD_METHODS.has(c.method) && c.method !== 'HEAD') {
            let code: unknown
            try { code = JSON.parse(res.body).error.code } catch {}
            if (typeof code !== 'string') httpFailures.push(`${what}: error without an { error: { code } } body: ${res.status} ${res.body.slice(0, 200)}`)
          }
        }
      }

      // Keepers hold every fuzzed workflow in memory, so its live document takes all the fuzz in one
      // piece (instead of being evicted and reloaded between connections) and is compared below
      // with what a restart loads from the store.
      let keeping = true
      const keeperSockets = new Set<RawSocket>()
      const keepers = FUZZ_IDS.map(async id => {
        while (keeping) {
          const sock = new RawSocket(`${srv.url}/${id}`)
          keeperSockets.add(sock)
          const closed = await sock.whenClosed
          keeperSockets.delete(sock)
          // A workflow deleted over HTTP closes its peers (4404); anything else is the server failing.
          if (keeping && closed.code !== 4404) unexpected.push(`keeper of ${id} closed: ${closed.code} ${closed.reason}`)
        }
      })
      const stopKeepers = async (): Promise<void> => {
        keeping = false
        for (const sock of keeperSockets) sock.ws.close()
        await Promise.all(keepers)
      }

      const workers = [
        ...Array.from({ length: WS_WORKERS }, (_, w) => wsWorker(w)),
        ...Array.from({ length: HTTP_WORKERS }, (_, w) => httpWorker(w))
      ]
      const fuzzers = Promise.all(workers).finally(() => { fuzzing = false })
      try {
        await Promise.all([fuzzers, honest])
      } catch (err) {
        // Stop everything before the server goes away, then report the first failure.
        stop = true
        fuzzing = false
        await Promise.allSettled([...workers, honest])
        await stopKeepers()
        const errors = srv.logs.filter(l => l.level === 'error').slice(-10).map(l => JSON.stringify(l))
        throw new Error(`${(err as Error).message}\nlast server errors:\n${errors.join('\n')}`)
      }

      const summary = Array.from(stats, ([label, outcomes]) => `${label}: ${Array.from(outcomes, ([o, n]) => `${o}=${n}`).join(' ')}`).join('\n')
      console.log(`fuzz ${tag}: ${sent} protocol messages on ${connectionsOpened} connections, ${httpSent} HTTP requests, ` +
        `${honestRounds} honest rounds in ${((Date.now() - started) / 1000).toFixed(1)} s\n${summary}`)

      expect(processErrors, `errors thrown out of the server ${tag}`).toEqual([])
      // Garbage from clients is the clients' fault: warnings at most, never a server error.
      expect(srv.logs.filter(l => l.level === 'error').map(l => JSON.stringify(l)), `server errors logged ${tag}`).toEqual([])
      expect(sent, tag).toBeGreaterThanOrEqual(TOTAL)
      expect(unexpected, `unexpected closes ${tag}`).toEqual([])
      expect(httpFailures, `HTTP answers to malformed requests ${tag}`).toEqual([])
      expect(disconnects, `the honest peers stayed connected ${tag}`).toEqual([])
      expect((await fetch(base + '/healthz')).status, tag).toBe(200)

      // The live state of every workflow (the fuzzed ones still held by their keepers).
      const serverErrors = (s: typeof srv): string => s.logs.filter(l => l.level === 'error').slice(-5).map(l => JSON.stringify(l)).join('\n')
      const before = new Map<string, unknown>()
      for (const meta of await srv.server.listWorkflows()) {
        const res = await fetch(`${base}/v1/workflows/${encodeURIComponent(meta.id)}`)
        const body = await res.text()
        expect(res.status, `GET ${meta.id} ${tag}: ${body}\n${serverErrors(srv)}`).toBe(200)
        before.set(meta.id, (JSON.parse(body) as { state: unknown }).state)
      }
      await stopKeepers()

      // Back to the baseline: only the honest connections and workflow remain.
      await waitFor(() => srv.server.connectionCount() === baselineConnections, { what: `connections back to ${baselineConnections} ${tag}` })
      await waitFor(() => srv.server.loadedWorkflows().join() === HONEST, { what: `only ${HONEST} loaded (have ${srv.server.loadedWorkflows().join()}) ${tag}` })
      gc?.()
      const grown = process.memoryUsage().heapUsed - heapBefore
      expect(grown, `heap growth in bytes ${tag}`).toBeLessThan(200 * 1024 * 1024)

      // The honest workflow holds exactly the honest edits, everywhere.
      const expected = expectedState()
      expect(agent.state, tag).toEqual(expected)
      expect(stock.json(), tag).toEqual(expected)
      const live = await fetch(`${base}/v1/workflows/${HONEST}`).then(res => res.json()) as { state: unknown }
      expect(live.state, tag).toEqual(expected)

      // What the server accepted for the fuzzed workflows it must load again, to the same state.
      stock.close()
      await agent.close()
      await srv.stop()
      const again = await restart(srv, { maxMessageSize: MAX })
      const againBase = again.url.replace(/^ws/, 'http')
      const after = await fetch(`${againBase}/v1/workflows/${HONEST}`).then(res => res.json()) as { state: unknown }
      expect(after.state, `the honest workflow after a restart ${tag}`).toEqual(expected)
      const keyframeDrift: string[] = []
      for (const [id, state] of before) {
        const res = await fetch(`${againBase}/v1/workflows/${encodeURIComponent(id)}`)
        const body = await res.text()
        expect(res.status, `GET ${id} after the restart ${tag}: ${body}\n${serverErrors(again)}`).toBe(200)
        const reloaded = (JSON.parse(body) as { state: unknown }).state
        if (canonical(reloaded) === canonical(state)) continue
        // Replaying the stored log must give back the live state. A keyframe is one merged Yjs
        // update, and Yjs integrates some malformed items (an origin in another parent) differently
        // in it than one by one: a known Yjs limitation, reported, not asserted.
        if ((await again.server.store.load(id)).keyframe === null) {
          expect(reloaded, `${id} after the restart, replayed from its log ${tag}`).toEqual(state)
        }
        keyframeDrift.push(id)
      }
      if (keyframeDrift.length > 0) console.log(`fuzz ${tag}: reloaded from a keyframe to another state: ${keyframeDrift.join(', ')}`)
      expect(processErrors, `errors thrown out of the server ${tag}`).toEqual([])
    } finally {
      process.off('uncaughtException', onUncaught)
      process.off('unhandledRejection', onRejection)
    }
  }, 120_000 + TOTAL * 10)

  it('a delete range ending beyond 2^53 is refused instead of breaking every later sync of the workflow (it crashed the server)', async () => {
    const srv = await start()
    const writer = new Y.Doc()
    writer.clientID = 1326001
    writer.getText('notes').insert(0, 'x'.repeat(5000))
    // No structs; one deletion of that client: clock 8, length 2^63 (Yjs decodes it, keeps the part
    // beyond the client's clock 5000 as a pending delete set, and can never encode that again).
    const bad = message(enc => {
      encoding.writeVarUint(enc, 0)
      encoding.writeVarUint(enc, 1)
      encoding.writeVarUint(enc, writer.clientID)
      encoding.writeVarUint(enc, 1)
      encoding.writeVarUint(enc, 8)
      encoding.writeUint8Array(enc, Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01))
    })
    const sock = new RawSocket(`${srv.url}/wf-range`)
    expect(await sock.whenOpen).toBe(true)
    expect(await sock.roundTrip(sync(2, Y.encodeStateAsUpdate(writer)), 'a real update')).toBe('ok')
    expect(await sock.roundTrip(sync(2, bad), 'the deletion')).toMatchObject({ code: 4400, reason: expect.stringMatching(/beyond clock/) })

    // The workflow keeps syncing: new peers get the state, and edits flow both ways.
    const agent = sdkAgent(srv.url, 'wf-range', 'after')
    const stock = stockClient(srv.url, 'wf-range')
    await Promise.all([agent.whenSynced({ timeoutMs: 10_000 }), stock.synced()])
    agent.update(d => { d.ok = true })
    await waitFor(() => (stock.json() as { ok?: boolean }).ok === true, { what: 'the edit reaches the stock client' })
    expect(stock.doc.getText('notes').length).toBe(5000)
  })
  it('a bigint value in an update is refused instead of stopping the workflow for every peer (seed 414740304 found it)', async () => {
    const srv = await start()
    const writer = new Y.Doc()
    // lib0 encodes a bigint (writeAny), Yjs applies it, and JSON cannot serialize it: the next
    // version cut failed and the workflow stopped.
    writer.getMap('state').set('big', 2n ** 70n)
    const sock = new RawSocket(`${srv.url}/wf-bigint`)
    expect(await sock.whenOpen).toBe(true)
    expect(await sock.roundTrip(sync(2, Y.encodeStateAsUpdate(writer)), 'the bigint')).toMatchObject({ code: 4400, reason: expect.stringMatching(/bigint/) })

    const agent = sdkAgent(srv.url, 'wf-bigint', 'after')
    const stock = stockClient(srv.url, 'wf-bigint')
    await Promise.all([agent.whenSynced({ timeoutMs: 10_000 }), stock.synced()])
    agent.update(d => { d.ok = true })
    await waitFor(() => (stock.json() as { ok?: boolean }).ok === true, { what: 'the edit reaches the stock client' })
    expect(srv.logs.filter(l => l.level === 'error')).toEqual([])
  })
})
