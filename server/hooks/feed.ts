/**
 * After-commit hook: every version (stored here or, in cluster mode, by another server) goes to
 * the change feed (record subscriptions, the SSE change stream, protocol-extension events) and
 * to the list feed of the inspector (`GET /v1/watch/workflows`).
 *
 *   createRegistry({ ..., hooks: [feedHook(feed, listWatch), ...] })
 */
import type { CommitHook } from '../sync/commit-hooks.ts'
import type { ChangeFeed } from '../sync/feed.ts'
import type { ListWatch } from '../sync/list-watch.ts'

export const feedHook = (feed: ChangeFeed, listWatch: ListWatch): CommitHook => ({
  name: 'change feed',
  afterVersion: ({ record }) => {
    feed.publish(record)
    listWatch.publish(record)
  }
})
