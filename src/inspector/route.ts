/**
 * URLs that name what the inspector shows, so a view can be shared and the back button works:
 *   /ui/                         the workflow list
 *   /ui/w/<id>                   a workflow, live
 *   /ui/w/<id>/v/<n>             version n: its state and its diff from n-1
 *   /ui/w/<id>/compare/<a>/<b>   the diff from version a to version b
 *
 *   const route = parseRoute(location.pathname); navigate({ kind: 'version', id, version: 3 })
 */
import { useEffect, useState } from 'preact/hooks'

export type Route =
  | { kind: 'list' }
  | { kind: 'workflow', id: string }
  | { kind: 'version', id: string, version: number }
  | { kind: 'compare', id: string, from: number, to: number }

export const parseRoute = (pathname: string): Route => {
  const parts = pathname.replace(/^\/ui\/?/, '').split('/').filter(p => p !== '').map(p => decodeURIComponent(p))
  if (parts[0] !== 'w' || parts[1] === undefined) return { kind: 'list' }
  const id = parts[1]
  const n = (i: number): number => Number.parseInt(parts[i] ?? '', 10)
  if (parts[2] === 'v' && Number.isInteger(n(3))) return { kind: 'version', id, version: n(3) }
  if (parts[2] === 'compare' && Number.isInteger(n(3)) && Number.isInteger(n(4))) return { kind: 'compare', id, from: n(3), to: n(4) }
  return { kind: 'workflow', id }
}

export const routeUrl = (route: Route): string => {
  if (route.kind === 'list') return '/ui/'
  const base = `/ui/w/${encodeURIComponent(route.id)}`
  if (route.kind === 'version') return `${base}/v/${route.version}`
  if (route.kind === 'compare') return `${base}/compare/${route.from}/${route.to}`
  return base
}

const EVENT = 'accord-inspector-navigate'

/** Goes to a view; `replace` for keyboard stepping, so back leaves the timeline rather than replaying every step. */
export const navigate = (route: Route, options: { replace?: boolean } = {}): void => {
  const url = routeUrl(route)
  if (url === location.pathname) return
  if (options.replace === true) history.replaceState(null, '', url)
  else history.pushState(null, '', url)
  dispatchEvent(new Event(EVENT))
}

/** The current route, following pushState navigation and the back/forward buttons. */
export const useRoute = (): Route => {
  const [route, setRoute] = useState(() => parseRoute(location.pathname))
  useEffect(() => {
    const update = (): void => { setRoute(parseRoute(location.pathname)) }
    addEventListener('popstate', update)
    addEventListener(EVENT, update)
    return () => {
      removeEventListener('popstate', update)
      removeEventListener(EVENT, update)
    }
  }, [])
  return route
}
