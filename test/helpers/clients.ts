import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { openWorkflow, type OpenWorkflowOptions, type WorkflowHandle } from '../../src/node/index.ts'
import type { z } from 'zod'
import { readState } from '../../src/model/json-yjs.ts'

const open: Array<{ close: () => unknown }> = []

/** An SDK agent; closed by closeClients(). */
export const sdkAgent = <S extends z.ZodType | undefined = undefined>(
  url: string, id: string, agentId: string, extra: Partial<OpenWorkflowOptions<S>> = {}
): ReturnType<typeof openWorkflow<S>> => {
  const handle = openWorkflow<S>(id, { url, agentId, ...extra } as OpenWorkflowOptions<S>)
  open.push(handle)
  return handle
}

export interface StockClient {
  doc: Y.Doc
  provider: WebsocketProvider
  /** The JSON of the Accord state root, as a stock client sees it. */
  json: () => unknown
  synced: () => Promise<void>
  close: () => void
}

/** A stock y-websocket client, unmodified, as any Yjs app would use it. */
export const stockClient = (url: string, id: string, params: Record<string, string> = {}): StockClient => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, id, doc, {
    WebSocketPolyfill: WebSocket as any,
    params,
    // Real stock clients live in other processes; in one test process BroadcastChannel would bypass the server.
    disableBc: true
  })
  const client: StockClient = {
    doc,
    provider,
    json: () => readState(doc),
    synced: () => provider.synced
      ? Promise.resolve()
      : new Promise(resolve => { provider.once('sync', () => { resolve() }) }),
    close: () => {
      provider.destroy()
      doc.destroy()
    }
  }
  open.push(client)
  return client
}

export const closeClients = async (): Promise<void> => {
  await Promise.all(open.splice(0).map(c => c.close()))
}

export type { WorkflowHandle }
