/**
 * Preloaded (node -r) into the reference server, y-websocket@2's own bin/server.cjs, which runs
 * unmodified. It counts the updates y-leveldb acknowledged (its storeUpdate promise resolved with
 * the stored clock) and answers the benchmark over IPC, like bench/ipc.ts's serveRpc:
 * `persisted`, `heap` (after full GCs; needs --expose-gc) and `loaded` (docs in memory).
 */
'use strict'
const utils = require(require.resolve('y-websocket-v2/bin/utils'))

let persisted = 0
const persistence = utils.getPersistence()
if (persistence !== null) {
  const ldb = persistence.provider
  const storeUpdate = ldb.storeUpdate.bind(ldb)
  ldb.storeUpdate = (docName, update) => {
    const stored = storeUpdate(docName, update)
    stored.then(clock => { if (typeof clock === 'number') persisted++ })
    return stored
  }
}

const settledHeap = async () => {
  if (typeof global.gc !== 'function') throw new Error('run with --expose-gc')
  let last = Infinity
  for (let i = 0; i < 6; i++) {
    global.gc()
    await new Promise(resolve => setTimeout(resolve, 20))
    const used = process.memoryUsage().heapUsed
    if (Math.abs(last - used) < 64 * 1024) return used
    last = used
  }
  return last
}

const handlers = {
  persisted: () => persisted,
  heap: settledHeap,
  loaded: () => utils.docs.size
}

process.on('message', message => {
  const handler = handlers[message.cmd]
  Promise.resolve().then(() => {
    if (handler === undefined) throw new Error(`unknown command ${message.cmd}`)
    return handler(message.args)
  }).then(
    result => { process.send({ id: message.id, ok: true, result }) },
    err => { process.send({ id: message.id, ok: false, error: err.stack || err.message }) }
  )
})
process.on('disconnect', () => { process.exit(0) })
process.on('SIGTERM', () => { process.exit(0) })
process.send({ ready: { pid: process.pid } })
