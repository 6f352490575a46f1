import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { headOf, useServers } from './helpers/use-servers.ts'
import { closeClients, sdkAgent } from './helpers/clients.ts'
import { waitFor } from './helpers/wait.ts'
import { attachRecovery, backoffDelay, type Recovery, type RecoveryEvent, type RecoveryOptions } from '../src/client/recovery.ts'

const { start, restart } = useServers()
const cleanups: Array<() => void> = []
afterEach(() => { for (const c of cleanups.splice(0)) c() })

/** A `ws` WebSocket that counts how many sockets the provider opens. */
const countingWebSocket = () => {
  class Counting extends WebSocket {
    static opened = 0
    /** performance.now() of each socket's creation. */
    static openedAt: number[] = []
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      Counting.opened++
      Counting.openedAt.push(performance.now())
    }
  }
  return Counting
}

interface Rig {
  doc: Y.Doc
  provider: WebsocketProvider
  recovery: Recovery
  events: RecoveryEvent[]
  /** performance.now() at which each event was emitted. */
  eventAt: number[]
  /** `closed` events of the provider (final closes only). */
  closed: Array<{ code: number, reason: string }>
  WS: ReturnType<typeof countingWebSocket>
}

const rig = (url: string, id: string, options: RecoveryOptions, providerOptions: { maxBackoffTime?: number } = {}): Rig => {
  const doc = new Y.Doc()
  const WS = countingWebSocket()
  const provider = new WebsocketProvider(url, id, doc, { WebSocketPolyfill: WS as any, disableBc: true, connect: false, ...providerOptions })
  const events: RecoveryEvent[] = []
  const eventAt: number[] = []
  const closed: Array<{ code: number, reason: string }> = []
  provider.on('closed', (e: { code: number, reason: string }) => { closed.push(e) })
  const recovery = attachRecovery(provider, options, e => { events.push(e); eventAt.push(performance.now()) })
  cleanups.push(() => {
    recovery.destroy()
    provider.destroy()
    doc.destroy()
  })
  provider.connect()
  return { doc, provider, recovery, events, eventAt, closed, WS }
}

/**
 * Each `reconnecting` event is followed by exactly one new socket, no earlier than its delay
 * (so the provider's own backoff timer did not connect first). Socket 0 is the first connection.
 */
const expectSocketsAfterDelays = (r: Rig): void => {
  const attempts = r.events.map((e, i) => ({ e, at: r.eventAt[i] as number })).filter(x => x.e.type === 'reconnecting')
  attempts.forEach(({ e, at }, k) => {
    const opened = r.WS.openedAt[k + 1]
    if (opened === undefined) return // the last attempt may still be waiting
    // Some slack: Node starts a timer at the event loop's cached time, which lags the clock.
    const { delayMs } = e as { delayMs: number }
    expect(opened - at, `socket of attempt ${k + 1}`).toBeGreaterThanOrEqual(delayMs - Math.min(10, delayMs / 4))
  })
}

const ofType = <T extends RecoveryEvent['type']>(events: RecoveryEvent[], type: T): Array<Extract<RecoveryEvent, { type: T }>> =>
  events.filter((e): e is Extract<RecoveryEvent, { type: T }> => e.type === type)


describe('backoffDelay', () => {
  const opts = { baseMs: 100, capMs: 10_000, jitter: 0.2 }

  it('doubles per attempt from baseMs and is capped at capMs', () => {
    const none = (): number => 0
    expect([1, 2, 3, 4, 5, 6, 7].map(a => backoffDelay(a, opts, none))).toEqual([100, 200, 400, 800, 1600, 3200, 6400])
    expect(backoffDelay(8, opts, none)).toBe(10_000)
    expect(backoffDelay(50, opts, none)).toBe(10_000)
    expect(backoffDelay(100_000, opts, none)).toBe(10_000) // no overflow to Infinity/NaN
    expect(backoffDelay(100_000, { ...opts, baseMs: 0 }, none)).toBe(0)
    expect(backoffDelay(0, opts, none)).toBe(100) // attempts are 1-based; below 1 counts as 1
    expect(backoffDelay(3, { baseMs: 20, capMs: 50, jitter: 0 }, none)).toBe(50)
  })

  it('applies jitter downwards within (1 - jitter) * d .. d, using the injected random', () => {
    expect(backoffDelay(3, opts, () => 0)).toBe(400)
    expect(backoffDelay(3, opts, () => 0.5)).toBeCloseTo(360)
    expect(backoffDelay(3, opts, () => 0.999999)).toBeCloseTo(320, 3)
    expect(backoffDelay(20, opts, () => 0.5)).toBeCloseTo(9000) // jitter applies after the cap
    expect(backoffDelay(3, { ...opts, jitter: 0 }, () => 0.7)).toBe(400)
    expect(backoffDelay(3, { ...opts, jitter: 1 }, () => 0.25)).toBe(300)
    for (let attempt = 1; attempt <= 12; attempt++) {
      const d = Math.min(100 * 2 ** (attempt - 1), 10_000)
      for (let i = 0; i < 100; i++) {
        const delay = backoffDelay(attempt, opts, () => i / 100)
        expect(delay).toBeLessThanOrEqual(d)
        expect(delay).toBeGreaterThanOrEqual(d * 0.8)
      }
    }
    // A misbehaving random source cannot push the delay out of bounds.
    expect(backoffDelay(3, opts, () => 5)).toBeCloseTo(320)
    expect(backoffDelay(3, opts, () => -1)).toBe(400)
  })

  it('refuses invalid options', () => {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider('ws://127.0.0.1:1', 'x', doc, { WebSocketPolyfill: WebSocket as any, disableBc: true, connect: false })
    cleanups.push(() => { provider.destroy(); doc.destroy() })
    for (const bad of [{ baseMs: -1 }, { capMs: Number.NaN }, { jitter: 1.5 }, { maxAttempts: -1 }, { maxAttempts: 1.5 }]) {
      expect(() => attachRecovery(provider, bad, () => {}), JSON.stringify(bad)).toThrow(/recovery option/)
    }
    // Nothing was installed by the refused calls.
    expect(provider.shouldReconnect({ code: 1006 } as CloseEvent, provider)).toBe(true)
    expect(provider.shouldReconnect({ code: 4404 } as CloseEvent, provider)).toBe(false)
  })
})

describe('attachRecovery with a real server', () => {
  it('backs off while the server is down, keeps an offline edit, recovers on a new server and resets', async () => {
    const srv = await start()
    const r = rig(srv.url, 'wf-recover', { baseMs: 20, capMs: 200, random: () => 0.5 })
    const { doc, provider, recovery, events, closed, WS } = r
    await waitFor(() => provider.synced, { what: 'first sync' })
    const state = doc.getMap('state')
    state.set('before', 1)
    await waitFor(async () => (await headOf(srv, 'wf-recover')) === 1, { what: 'first edit stored' })
    expect(events).toEqual([])

    await srv.stop()
    await waitFor(() => ofType(events, 'reconnecting').length >= 5, { what: 'five reconnect attempts' })
    expect(provider.wsconnected).toBe(false)
    state.set('offline', 'edit') // made while no server is reachable

    const reconnecting = ofType(events, 'reconnecting')
    expect(reconnecting.slice(0, 5).map(e => e.attempt)).toEqual([1, 2, 3, 4, 5])
    // jitter 0.2 with random 0.5 takes 10% off: 20, 40, 80, 160, 200 (capped) -> 18, 36, 72, 144, 180
    expect(reconnecting.slice(0, 5).map(e => e.delayMs)).toEqual([18, 36, 72, 144, 180].map(d => expect.closeTo(d, 6)))
    expect(reconnecting.every(e => e.delayMs <= 200)).toBe(true)
    expect(reconnecting[0]?.code).toBe(1001) // the server said goodbye ('server shutting down')
    expect(reconnecting[1]?.code).toBe(1006) // then: connection refused
    expect(closed).toEqual([]) // retried closes never look final to the provider's `closed` listeners
    expect(recovery.attempts).toBeGreaterThanOrEqual(5)

    const again = await restart(srv)
    const [recovered] = await waitFor(() => { const r = ofType(events, 'recovered'); return r.length > 0 ? r : null }, { what: 'recovered' })
    expect(provider.synced).toBe(true)
    const attemptsMade = ofType(events, 'reconnecting').length
    expect(recovered).toEqual({ type: 'recovered', attempts: attemptsMade, downtimeMs: expect.any(Number) })
    expect(recovered?.downtimeMs).toBeGreaterThan(0)
    expect(events.at(-1)).toEqual(recovered) // no attempt after recovering
    expect(recovery.attempts).toBe(0)
    expect(WS.opened).toBe(1 + attemptsMade) // the first socket plus exactly one per attempt
    expectSocketsAfterDelays(r)

    // Nothing was lost: another client sees both edits, and the server stored the offline one.
    const reader = sdkAgent(again.url, 'wf-recover', 'reader')
    await waitFor(() => reader.state.before === 1 && reader.state.offline === 'edit', { what: 'offline edit at another client' })
    await waitFor(async () => (await again.server.stateAt('wf-recover', await headOf(again, 'wf-recover'))).offline === 'edit',
      { what: 'offline edit stored' })

    // The counter was reset: a second outage starts again at attempt 1.
    await closeClients()
    await again.stop()
    await waitFor(() => events.length > attemptsMade + 1, { what: 'attempt after the second outage' })
    expect(events[attemptsMade + 1]).toMatchObject({ type: 'reconnecting', attempt: 1 })
  })

  it('gives up after maxAttempts consecutive failures and opens no further socket', async () => {
    const srv = await start()
    // The provider's own timer (maxBackoffTime 20) fires soon after each close; it must stay a no-op.
    const r = rig(srv.url, 'wf-giveup', { baseMs: 20, capMs: 200, maxAttempts: 3, jitter: 0 }, { maxBackoffTime: 20 })
    const { provider, recovery, events, closed, WS } = r
    await waitFor(() => provider.synced, { what: 'first sync' })
    await srv.stop()
    const gaveUp = await waitFor(() => ofType(events, 'gave-up')[0], { what: 'gave-up' })
    expect(gaveUp).toMatchObject({ type: 'gave-up', attempts: 3, code: 1006 })
    expect(events.map(e => e.type)).toEqual(['reconnecting', 'reconnecting', 'reconnecting', 'gave-up'])
    expect(ofType(events, 'reconnecting').map(e => e.attempt)).toEqual([1, 2, 3])
    expect(WS.opened).toBe(4) // the original connection + 3 attempts
    expect(ofType(events, 'reconnecting').map(e => e.delayMs)).toEqual([20, 40, 80])
    expectSocketsAfterDelays(r)
    expect(recovery.gaveUp).toBe(true)
    // Giving up is final for the provider: it emits `closed` and will not connect on its own.
    expect(closed).toEqual([{ code: 1006, reason: '' }])
    expect(provider.shouldConnect).toBe(false)
    expect(provider.ws).toBeNull()
    expect(recovery.pending).toBe(false)
    // Absence can only be observed over time: watch for well over the longest delay either timer
    // could still have (capMs 200, provider maxBackoffTime 20), failing fast on any new socket.
    const quietUntil = Date.now() + 600
    await waitFor(() => {
      if (WS.opened !== 4 || events.length !== 4) throw new Error(`unexpected activity: ${WS.opened} sockets, ${JSON.stringify(events)}`)
      return Date.now() >= quietUntil
    }, { timeoutMs: 5_000, what: 'a quiet period', intervalMs: 20 })
    expect(WS.opened).toBe(4)
    expect(events).toHaveLength(4)

    // A deliberate connect() later gets a fresh budget and recovers once a server is back.
    const again = await restart(srv)
    provider.connect()
    await waitFor(() => provider.synced, { what: 'sync after manual connect' })
    expect(recovery.gaveUp).toBe(false)
    expect(again.server.connectionCount()).toBe(1)
  })

  it('treats 4400-4499 closes as final: no attempt, no event, the provider emits closed', async () => {
    const srv = await start()
    const { doc, provider, recovery, events, closed, WS } = rig(srv.url, 'wf-final', { baseMs: 20, capMs: 200 })
    await waitFor(() => provider.synced, { what: 'first sync' })
    doc.getMap('state').set('x', 1)
    await waitFor(async () => (await headOf(srv, 'wf-final')) === 1)
    await srv.server.deleteWorkflow('wf-final')
    await waitFor(() => closed.length === 1, { what: 'closed' })
    expect(closed[0]?.code).toBe(4404)
    expect(events).toEqual([])
    expect(recovery.pending).toBe(false)
    expect(provider.shouldConnect).toBe(false)
    expect(WS.opened).toBe(1)
  })

  it('a disconnect() while a retry is pending cancels it; destroy() restores the provider', async () => {
    const srv = await start()
    const { provider, recovery, events, WS } = rig(srv.url, 'wf-cancel', { baseMs: 5_000, capMs: 5_000, jitter: 0 })
    await waitFor(() => provider.synced, { what: 'first sync' })
    await srv.stop()
    await waitFor(() => events.length === 1, { what: 'first attempt scheduled' })
    expect(events[0]).toMatchObject({ type: 'reconnecting', attempt: 1, delayMs: 5_000 })
    expect(recovery.pending).toBe(true)
    provider.disconnect()
    expect(recovery.pending).toBe(false)
    expect(recovery.attempts).toBe(0)
    expect(provider.shouldConnect).toBe(false)

    const before = provider.shouldReconnect
    recovery.destroy()
    expect(provider.shouldReconnect).not.toBe(before)
    expect(Object.prototype.hasOwnProperty.call(provider, 'disconnect')).toBe(false)
    // After destroy the provider is a stock one again: its default policy and backoff apply.
    const again = await restart(srv)
    provider.connect()
    await waitFor(() => provider.synced, { what: 'sync without recovery' })
    expect(again.server.connectionCount()).toBe(1)
    expect(events).toHaveLength(1)
    expect(WS.opened).toBe(2)
  })
})
