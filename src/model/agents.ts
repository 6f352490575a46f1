/**
 * Root map of the document recording which agent owns which Yjs client id
 * (String(clientID) -> agentId), so every replica can name the author of a change.
 */
export const AGENTS_ROOT = 'accord:agents'
