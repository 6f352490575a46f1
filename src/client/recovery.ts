/**
 * Reconnect with exponential backoff and jitter for a y-websocket (v3) `WebsocketProvider`.
 *
 * How it takes over from the provider's own fixed backoff (y-websocket v3.1.0):
 * on every close the server (or the network) causes, the provider calls
 * `provider.shouldReconnect(event, provider)` and then always schedules its own `setupWS` timer,
 * which only connects if `provider.shouldConnect` is still true. `attachRecovery` installs its
 * predicate as `provider.shouldReconnect` (a documented, mutable property), and for a close it
 * wants to retry it sets `provider.shouldConnect = false` and returns `true`:
 *
 *  - the provider's own timer becomes a no-op (it checks `shouldConnect`),
 *  - the provider does NOT emit `closed` (it only does when the predicate returns false), so the
 *    `closed` event keeps meaning "final": a 4400-4499 close, or giving up after `maxAttempts`,
 *  - after the backoff delay this module calls `provider.connect()`, which sets
 *    `shouldConnect = true` again and opens a new socket.
 *
 * Closes the client makes itself (`provider.disconnect()`, `destroy()`, the provider's 30 s
 * watchdog) never reach the predicate (the event is null): the provider handles them as before.
 * A `provider.disconnect()` (or `provider.destroy()`) while a retry is pending cancels that retry.
 */
import type { WebsocketProvider } from 'y-websocket'
import { AccordError } from '../model/errors.ts'

export interface RecoveryOptions {
  /** Delay before the first reconnect attempt, in ms (default 100); doubles per attempt. */
  baseMs?: number
  /** Upper bound of the delay, in ms (default 10_000). */
  capMs?: number
  /** Consecutive failed attempts after which recovery gives up (default Infinity). */
  maxAttempts?: number
  /** 0..1 (default 0.2): the delay is drawn from (1 - jitter) * d .. d. */
  jitter?: number
  /** Source of randomness in [0, 1) for the jitter (default Math.random). */
  random?: () => number
}

export type RecoveryEvent =
  | { type: 'reconnecting', attempt: number, delayMs: number, code?: number, reason?: string }
  | { type: 'recovered', attempts: number, downtimeMs: number }
  | { type: 'gave-up', attempts: number, code?: number, reason?: string }

export interface Recovery {
  /** Removes the predicate, listeners and timers; a pending retry is dropped (the provider stays disconnected). */
  destroy: () => void
  /**
   * The close policy, already installed as `provider.shouldReconnect`. Returns false only for a
   * final close (4400-4499, or the close that exhausts `maxAttempts`), in which case the provider
   * emits `closed`; for every other close it returns true and schedules the retry itself.
   */
  shouldReconnect: (event: CloseEvent) => boolean
  /** Consecutive failed attempts since the connection last synced. */
  readonly attempts: number
  /** True once `gave-up` was emitted, until a deliberate `provider.connect()` starts a fresh budget. */
  readonly gaveUp: boolean
  /** True while a reconnect timer is pending. */
  readonly pending: boolean
}

const DEFAULTS = { baseMs: 100, capMs: 10_000, maxAttempts: Number.POSITIVE_INFINITY, jitter: 0.2 }

/** Close codes the server uses for decisions reconnecting cannot fix (see close-codes.ts). */
export const isFinalCloseCode = (code: number | undefined): boolean =>
  code !== undefined && code >= 4400 && code < 4500

/**
 * Delay before reconnect attempt `attempt` (1-based): `baseMs * 2^(attempt-1)`, capped at `capMs`,
 * then reduced by up to `jitter` of itself: `capped * (1 - jitter * random())`.
 */
export const backoffDelay = (
  attempt: number,
  options: Required<Pick<RecoveryOptions, 'baseMs' | 'capMs' | 'jitter'>>,
  random: () => number
): number => {
  const { baseMs, capMs, jitter } = options
  const n = Math.max(1, Math.floor(Number.isFinite(attempt) ? attempt : 1))
  // Clamp the exponent: 2 ** 1024 is Infinity, and 0 * Infinity would be NaN.
  const raw = baseMs * 2 ** Math.min(n - 1, 64)
  const capped = Math.max(0, Math.min(raw, capMs))
  const r = Math.min(Math.max(random(), 0), 1)
  const j = Math.min(Math.max(jitter, 0), 1)
  return capped * (1 - j * r)
}

const check = (name: string, value: number, ok: boolean): void => {
  if (!ok) throw new AccordError('INVALID_REQUEST', `recovery option ${name} is invalid: ${String(value)}`)
}

/**
 * Installs the reconnect policy on `provider` (call it right after constructing the provider, in
 * the same tick, or construct it with `connect: false` and call `provider.connect()` afterwards).
 * `emit` receives `reconnecting` before each attempt, `recovered` when the provider synced again
 * after at least one attempt, and `gave-up` after `maxAttempts` consecutive failures (that last
 * close is then final: the provider emits `closed` with its code, e.g. 1006; check `gaveUp` to
 * tell it from a 4400-4499 close). An exception thrown by `emit` is rethrown asynchronously so
 * the provider's close handling is never cut short.
 */
export const attachRecovery = (
  provider: WebsocketProvider,
  options: RecoveryOptions,
  emit: (event: RecoveryEvent) => void
): Recovery => {
  const baseMs = options.baseMs ?? DEFAULTS.baseMs
  const capMs = options.capMs ?? DEFAULTS.capMs
  const maxAttempts = options.maxAttempts ?? DEFAULTS.maxAttempts
  const jitter = options.jitter ?? DEFAULTS.jitter
  const random = options.random ?? Math.random
  check('baseMs', baseMs, Number.isFinite(baseMs) && baseMs >= 0)
  check('capMs', capMs, Number.isFinite(capMs) && capMs >= 0)
  check('maxAttempts', maxAttempts, maxAttempts >= 0 && (maxAttempts === Number.POSITIVE_INFINITY || Number.isInteger(maxAttempts)))
  check('jitter', jitter, jitter >= 0 && jitter <= 1)

  let attempts = 0
  let downSince: number | null = null
  let gaveUp = false
  let timer: ReturnType<typeof setTimeout> | null = null
  let destroyed = false

  const cancel = (): void => {
    if (timer !== null) clearTimeout(timer)
    timer = null
  }

  const safeEmit = (event: RecoveryEvent): void => {
    // A throwing listener must not break the provider's close handling.
    try { emit(event) } catch (err) { queueMicrotask(() => { throw err }) }
  }

  const shouldReconnect = (event: CloseEvent): boolean => {
    const code = typeof event?.code === 'number' ? event.code : undefined
    const reason = typeof event?.reason === 'string' && event.reason !== '' ? event.reason : undefined
    if (destroyed || isFinalCloseCode(code)) {
      // Final (or no longer ours): the provider stops and emits `closed`, as it does by default.
      if (!destroyed) { cancel(); downSince = null; attempts = 0 }
      return !isFinalCloseCode(code)
    }
    downSince ??= Date.now()
    if (attempts >= maxAttempts) {
      cancel()
      gaveUp = true
      safeEmit({ type: 'gave-up', attempts, code, reason })
      // Returning false makes the provider set shouldConnect = false and emit `closed`.
      return false
    }
    attempts++
    const delayMs = backoffDelay(attempts, { baseMs, capMs, jitter }, random)
    // Silence the provider's own backoff timer; this module reconnects after `delayMs`.
    provider.shouldConnect = false
    cancel()
    timer = setTimeout(() => {
      timer = null
      if (!destroyed) provider.connect()
    }, delayMs)
    safeEmit({ type: 'reconnecting', attempt: attempts, delayMs, code, reason })
    return true
  }

  const onSync = (synced: boolean): void => {
    if (!synced) return
    if (attempts > 0) {
      const downtimeMs = downSince === null ? 0 : Date.now() - downSince
      const made = attempts
      attempts = 0
      downSince = null
      gaveUp = false
      safeEmit({ type: 'recovered', attempts: made, downtimeMs })
    } else {
      downSince = null
      gaveUp = false
    }
  }

  // A new socket (our retry, or someone calling connect()) supersedes a pending retry. After
  // giving up this module never connects, so a new socket then is a deliberate connect(): it
  // gets a fresh budget of attempts.
  const onStatus = ({ status }: { status: string }): void => {
    if (status !== 'connecting') return
    cancel()
    if (gaveUp) {
      gaveUp = false
      attempts = 0
      downSince = null
    }
  }

  // disconnect() (also called by destroy()) is the user's intention to stay offline: a pending
  // retry must not undo it. The provider emits nothing we could observe while no socket is open,
  // so wrap the instance method.
  const ownDisconnect = Object.prototype.hasOwnProperty.call(provider, 'disconnect')
  const originalDisconnect = provider.disconnect
  const disconnect = function (this: WebsocketProvider): void {
    if (timer !== null) {
      cancel()
      attempts = 0
      downSince = null
    }
    originalDisconnect.call(this)
  }
  provider.disconnect = disconnect

  const previous = provider.shouldReconnect
  provider.shouldReconnect = shouldReconnect
  provider.on('sync', onSync)
  provider.on('status', onStatus)

  const destroy = (): void => {
    if (destroyed) return
    destroyed = true
    cancel()
    provider.off('sync', onSync)
    provider.off('status', onStatus)
    if (provider.shouldReconnect === shouldReconnect) provider.shouldReconnect = previous
    if (provider.disconnect === disconnect) {
      if (ownDisconnect) provider.disconnect = originalDisconnect
      else delete (provider as { disconnect?: unknown }).disconnect
    }
  }

  return {
    destroy,
    shouldReconnect,
    get attempts () { return attempts },
    get gaveUp () { return gaveUp },
    get pending () { return timer !== null }
  }
}
