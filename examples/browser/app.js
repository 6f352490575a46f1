// The browser example's page script: plain ESM, no framework, no build step of its own.
//
// It opens one workflow through the SDK bundle that serve.ts builds (/accord.js) with IndexedDB
// persistence: the page works offline, a reload shows the edits made meanwhile (they are in this
// browser's IndexedDB), and they reach the server and every other agent once it is reachable.
//
// Query parameters: ?workflow=demo&agent=browser-1 (&server=ws://... to use another sync server).
//
// The state: every note is its own key in the workflow's root, e.g.
//   { "browser-1-m3x9k2-ab12": { "text": "...", "by": "browser-1", "done": false, "at": 1700000000000 } }
// The root map is the one Yjs type every replica shares from the start, so two agents that add
// notes while offline each create their own key and both survive the merge. (A shared `notes`
// list created by two offline agents would be two different arrays written to the same key: the
// merge keeps one of them.) Other keys are shown in the JSON view and left alone.
import { openWorkflow } from '/accord.js'
import config from '/config.js'

const $ = id => document.getElementById(id)
const params = new URLSearchParams(location.search)
const workflowId = params.get('workflow') || 'demo'
const agentId = params.get('agent') || 'browser'
const url = params.get('server') || config.url

$('workflow-id').textContent = workflowId
$('agent-id').textContent = agentId
$('server-url').textContent = url
document.title = `${workflowId} · Accord`

// ---------------------------------------------------------------- connection status

const LABELS = { connecting: 'connecting', syncing: 'syncing', synced: 'online', disconnected: 'offline', closed: 'closed' }
const setStatus = (status, detail) => {
  const badge = $('status')
  // index.html styles data-status synced / disconnected / closed; anything else is "in between".
  badge.dataset.status = status
  badge.textContent = detail ? `${LABELS[status]}: ${detail}` : LABELS[status]
  badge.title = status === 'disconnected' ? 'Edits are kept in this browser and sync when the server is back' : ''
}

const logEvent = text => {
  const list = $('recovery')
  list.querySelector('.empty')?.remove()
  const li = document.createElement('li')
  const time = document.createElement('time')
  time.textContent = new Date().toLocaleTimeString()
  li.append(time, ` ${text}`)
  list.prepend(li)
  while (list.children.length > 30) list.lastElementChild.remove()
}

let wf
try {
  wf = openWorkflow(workflowId, {
    url,
    agentId,
    // The IndexedDB database is `accord-example:<agent>:<workflow>`: one replica per agent, as
    // with Node agents (one LevelDB directory each).
    persistence: `accord-example:${agentId}`,
    recovery: { baseMs: 100, capMs: 2000 }
  })
} catch (err) {
  setStatus('closed', err.message)
  $('note-error').textContent = err.message
  throw err
}
// For the devtools console: try wf.state, wf.history(), wf.update(d => { d.x = 1 }).
window.wf = wf

const { provider } = wf
provider.on('status', ({ status }) => {
  // 'connecting' is also every retry while the server is down: keep showing "offline" then.
  if (status === 'connected') setStatus('syncing')
  if (status === 'disconnected') setStatus('disconnected')
})
provider.on('sync', synced => {
  if (synced) setStatus('synced')
})
provider.on('closed', ({ code, reason }) => {
  setStatus('closed', `${code} ${reason}`)
  logEvent(`closed by the server: ${code} ${reason}`)
})
wf.onRecovery(event => {
  if (event.type === 'reconnecting') {
    setStatus('disconnected', `retrying in ${(event.delayMs / 1000).toFixed(1)} s`)
    logEvent(`reconnecting, attempt ${event.attempt}${event.code === undefined ? '' : ` (close ${event.code})`}`)
  } else if (event.type === 'recovered') {
    logEvent(`back online after ${(event.downtimeMs / 1000).toFixed(1)} s`)
  } else {
    logEvent(`gave up after ${event.attempts} attempts`)
  }
})
addEventListener('offline', () => { setStatus('disconnected', 'no network'); logEvent('browser went offline') })
addEventListener('online', () => { logEvent('browser is online again') })

// ---------------------------------------------------------------- state and notes

const isNote = value => value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.text === 'string'
const notesOf = state => Object.entries(state)
  .filter(([, value]) => isNote(value))
  .sort(([a, x], [b, y]) => ((typeof x.at === 'number' ? x.at : 0) - (typeof y.at === 'number' ? y.at : 0)) || (a < b ? -1 : a > b ? 1 : 0))

// One <li> per note id, reused across renders, so a field being edited keeps its focus and text.
const rows = new Map()
const makeRow = id => {
  const li = document.createElement('li')
  li.dataset.id = id
  const done = document.createElement('input')
  done.type = 'checkbox'
  done.title = 'done'
  const text = document.createElement('input')
  text.type = 'text'
  text.maxLength = 500
  const by = document.createElement('span')
  by.className = 'by'
  const remove = document.createElement('button')
  remove.type = 'button'
  remove.className = 'remove'
  remove.textContent = '✕'
  remove.title = 'remove'
  done.addEventListener('change', () => {
    edit(`${done.checked ? 'done' : 'reopened'}: ${wf.state[id]?.text ?? id}`, d => { if (isNote(d[id])) d[id].done = done.checked })
  })
  // 'change' fires on Enter and when the field loses focus with a new value.
  text.addEventListener('change', () => {
    const value = text.value.trim()
    if (value === '') return
    edit(`edited a note: ${value}`, d => { if (isNote(d[id])) d[id].text = value })
  })
  text.addEventListener('keydown', event => { if (event.key === 'Enter') text.blur() })
  remove.addEventListener('click', () => { edit(`removed a note: ${wf.state[id]?.text ?? id}`, d => { delete d[id] }) })
  li.append(done, text, by, remove)
  return { li, done, text, by }
}

const renderNotes = state => {
  const list = $('notes')
  const notes = notesOf(state)
  notes.forEach(([id, note], i) => {
    let row = rows.get(id)
    if (row === undefined) {
      row = makeRow(id)
      rows.set(id, row)
    }
    if (document.activeElement !== row.text) row.text.value = note.text
    row.done.checked = note.done === true
    row.li.classList.toggle('done', note.done === true)
    row.by.textContent = typeof note.by === 'string' ? note.by : ''
    // Move only rows that are out of place: moving a node would drop the focus inside it.
    if (list.children[i] !== row.li) list.insertBefore(row.li, list.children[i] ?? null)
  })
  const ids = new Set(notes.map(([id]) => id))
  for (const [id, row] of rows) {
    if (!ids.has(id)) {
      row.li.remove()
      rows.delete(id)
    }
  }
  $('notes-empty').hidden = notes.length > 0
}

const render = () => {
  const state = wf.state
  $('state').textContent = JSON.stringify(state, null, 2)
  renderNotes(state)
}

wf.subscribe(change => {
  render()
  const who = change.local ? 'you' : change.author
  $('last-change').textContent = `last change by ${who}${change.description ? `: ${change.description}` : ''} (${change.ops.length} op${change.ops.length === 1 ? '' : 's'})`
})

// Local edits: written to the document at once (online or not), then stored in IndexedDB.
// #saved says when every edit so far is stored in this browser, i.e. survives a reload.
let unsaved = 0
const edit = (description, fn) => {
  $('note-error').textContent = ''
  try {
    wf.update(fn, { description })
  } catch (err) {
    $('note-error').textContent = `${err.code ?? 'ERROR'}: ${err.message}`
    render() // puts back what the refused edit showed
    return false
  }
  unsaved++
  const saved = $('saved')
  saved.dataset.saved = 'false'
  saved.textContent = 'saving in this browser…'
  wf.whenPersisted().then(() => {
    if (--unsaved > 0) return
    saved.dataset.saved = 'true'
    saved.textContent = wf.synced ? 'saved' : 'saved in this browser, syncs when online'
  }, err => {
    unsaved--
    saved.textContent = `not saved locally: ${err.message}`
  })
  return true
}

const newId = () => `${agentId.replace(/[^\w.-]/g, '_')}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`

$('note-form').addEventListener('submit', event => {
  event.preventDefault()
  const input = $('note-text')
  const text = input.value.trim()
  if (text === '') return
  const id = newId()
  if (edit(`${agentId} added a note: ${text}`, d => { d[id] = { text, by: agentId, done: false, at: Date.now() } })) input.value = ''
})

// ---------------------------------------------------------------- agents present

const renderAgents = () => {
  const names = new Set([agentId])
  for (const state of provider.awareness.getStates().values()) {
    if (typeof state?.agent?.id === 'string') names.add(state.agent.id)
  }
  const list = $('agents')
  list.replaceChildren(...Array.from(names).sort().map(name => {
    const li = document.createElement('li')
    li.textContent = name
    if (name === agentId) li.className = 'me'
    return li
  }))
}
provider.awareness.on('change', renderAgents)

// ---------------------------------------------------------------- history

// Versions the server stored: the newest 20 on every (re)sync, plus live ones from a record
// subscription (it resumes after reconnects by itself). Merged by version number.
const versions = new Map()
const renderHistory = () => {
  const list = $('history')
  const newest = Array.from(versions.values()).sort((a, b) => b.version - a.version).slice(0, 20)
  if (newest.length === 0) return
  list.replaceChildren(...newest.map(record => {
    const li = document.createElement('li')
    const v = document.createElement('span')
    v.className = 'v'
    v.textContent = `v${record.version}`
    const meta = document.createElement('span')
    meta.className = 'meta'
    meta.textContent = ` ${record.author} · ${new Date(record.timestamp).toLocaleTimeString()}`
    const ops = document.createElement('span')
    ops.className = 'ops'
    const json = JSON.stringify(record.changes)
    ops.textContent = json.length > 200 ? `${json.slice(0, 200)}…` : json
    li.append(v, record.description, meta, ops)
    return li
  }))
}
const addVersions = records => {
  for (const record of records) versions.set(record.version, record)
  renderHistory()
}
wf.subscribe({}, record => { addVersions([record]) })
provider.on('sync', synced => {
  if (synced) wf.history({ limit: 20 }).then(addVersions, err => { logEvent(`history: ${err.message}`) })
})

// ---------------------------------------------------------------- start

renderAgents()
wf.whenLoaded().then(() => {
  render()
  const count = notesOf(wf.state).length
  $('last-change').textContent = `loaded from this browser: ${count} note${count === 1 ? '' : 's'}`
  if (!wf.synced && $('status').dataset.status === 'connecting') setStatus('connecting', 'loaded local copy')
}, err => {
  setStatus('closed', `local storage failed: ${err.message}`)
})
