/**
 * WebSocket close codes shared by the server and the SDK: 4000 + the matching HTTP status.
 * Stock y-websocket clients (v3) stop reconnecting on 4400-4499 and retry on everything else,
 * which is exactly the split we want: bad input is final, server trouble is transient.
 */
export const CloseCodes = {
  badMessage: { code: 4400, reason: 'malformed message' },
  invalidWorkflowId: { code: 4400, reason: 'invalid workflow id' },
  unauthorized: { code: 4401, reason: 'unauthorized' },
  forbidden: { code: 4403, reason: 'forbidden' },
  tooLarge: { code: 4413, reason: 'message too large' },
  quotaExceeded: { code: 4413, reason: 'storage quota exceeded' },
  deleted: { code: 4404, reason: 'workflow deleted' },
  rateLimited: { code: 4429, reason: 'update rate limit exceeded' },
  storageFailure: { code: 4500, reason: 'storage failure' },
  // Limits that clear by themselves: clients retry (stock clients do on codes outside 4400-4499).
  tooManyConnections: { code: 4503, reason: 'too many connections to this workflow' },
  tooManyWorkflows: { code: 4503, reason: 'too many workflows in memory' },
  loadFailure: { code: 4500, reason: 'workflow could not be loaded' },
  shuttingDown: { code: 1001, reason: 'server shutting down' }
} as const

export type CloseCode = (typeof CloseCodes)[keyof typeof CloseCodes]
