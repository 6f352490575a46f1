/**
 * The inspector's entry (bundled by esbuild into dist/ui/app.js, with its data worker
 * worker.ts into dist/ui/worker.js, served at /ui by server/http/ui.ts). Preact, without JSX so
 * the sources type-check with the package's own tsconfig. With auth on, the page asks for a
 * token and keeps it in sessionStorage only.
 *
 *   esbuild app=src/inspector/main.ts worker=src/inspector/worker.ts --bundle --minify --format=esm --platform=browser --target=es2022 --outdir=dist/ui
 */
import { h, render, type ComponentChild } from 'preact'
import { useEffect, useMemo, useState } from 'preact/hooks'
import { createApi, type Api } from './api.ts'
import { WorkflowList } from './list.ts'
import { createRemote } from './remote.ts'
import { navigate, routeUrl, useRoute } from './route.ts'
import { WorkflowPage } from './workflow.ts'
import './style.css'

const TokenForm = ({ api, reason, onDone }: { api: Api, reason: string, onDone: () => void }): ComponentChild => {
  const [value, setValue] = useState('')
  return h('form', {
    class: 'token-form',
    onSubmit: (e: Event) => {
      e.preventDefault()
      api.setToken(value.trim() === '' ? null : value.trim())
      onDone()
    }
  },
  h('h2', null, 'Sign in'),
  h('p', null, reason),
  h('label', null, 'Token (JWT, e.g. from ', h('code', null, 'accord token'), ')', h('textarea', { name: 'token', rows: 4, value, onInput: (e: Event) => { setValue((e.target as HTMLTextAreaElement).value) } })),
  h('button', { type: 'submit' }, 'Open'),
  h('p', { class: 'muted' }, 'The token stays in this tab (sessionStorage) and is sent only to this server.'))
}

const App = (): ComponentChild => {
  const api = useMemo(() => createApi(sessionStorage), [])
  // The data worker: the live documents and opened versions live there, off this thread.
  const remote = useMemo(() => createRemote(), [])
  useEffect(() => () => { remote.close() }, [remote])
  const route = useRoute()
  const [auth, setAuth] = useState<'checking' | 'ok' | string>('checking')
  const [error, setError] = useState<{ code: string, message: string } | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const [attempt, setAttempt] = useState(0)

  const onError = (err: unknown): void => {
    const e = err as { code?: string, message?: string }
    if (e.code === 'UNAUTHORIZED') setAuth(e.message ?? 'a token is required')
    else setError({ code: e.code ?? 'INTERNAL', message: e.message ?? String(err) })
  }
  useEffect(() => {
    setAuth('checking')
    api.get('/v1/workflows').then(() => { setAuth('ok') }, onError)
  }, [attempt])
  useEffect(() => { setError(null) }, [route])
  useEffect(() => {
    if (notice === null) return
    const t = setTimeout(() => { setNotice(null) }, 4000)
    return () => { clearTimeout(t) }
  }, [notice])

  const body = auth === 'checking'
    ? h('p', { class: 'muted' }, 'connecting…')
    : auth !== 'ok'
      ? h(TokenForm, { api, reason: `This server needs a token: ${auth}.`, onDone: () => { setAttempt(a => a + 1) } })
      : route.kind === 'list'
        ? h(WorkflowList, { api, onError })
        : h(WorkflowPage, { api, remote, route, onError, onNotice: setNotice })

  return h('div', { class: 'app' },
    h('header', null,
      h('a', { class: 'brand', href: routeUrl({ kind: 'list' }), onClick: (e: MouseEvent) => { e.preventDefault(); navigate({ kind: 'list' }) } }, 'Accord inspector'),
      api.token() !== null && h('button', { class: 'signout', onClick: () => { api.setToken(null); setAttempt(a => a + 1) } }, 'forget token')
    ),
    error !== null && h('div', { class: 'error', role: 'alert', 'data-code': error.code }, `${error.code}: ${error.message}`, h('button', { onClick: () => { setError(null) } }, '×')),
    notice !== null && h('div', { class: 'notice', role: 'status' }, notice),
    h('main', null, body)
  )
}

const root = document.getElementById('app')
if (root !== null) render(h(App, null), root)
