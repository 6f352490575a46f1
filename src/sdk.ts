/**
 * Everything the SDK exports on every platform except `openWorkflow`, which each platform entry
 * builds with its own WebSocket and persistence (`src/index.ts`, `src/node/index.ts`).
 */
export { createOpenWorkflow } from './client/workflow.ts'
export { AGENTS_ROOT } from './model/agents.ts'
export type { WorkflowHandle, OpenWorkflowOptions, ChangeEvent, ChangeListener, RecordListener, RecordSubscription, Subscription, UpdateOptions, StateOf } from './client/workflow.ts'
export type { Platform } from './client/platform.ts'
export type { LocalPersistence, AttachPersistence } from './client/persistence.ts'
export type { HistoryApi } from './client/history-api.ts'
export * from './model/schema.ts'
export * from './model/errors.ts'
export { CloseCodes } from './model/close-codes.ts'
export { isValidWorkflowId } from './model/workflow-id.ts'
export type { JsonValue, JsonObject } from './model/json.ts'
export type { PatchOperation } from './model/patch.ts'
export * from './model/runtime.ts'
export type { RuntimeApi, Lifecycle, Tasks } from './client/runtime-api.ts'
export { backoffDelay, isFinalCloseCode } from './client/recovery.ts'
export type { RecoveryOptions, RecoveryEvent } from './client/recovery.ts'
export { CheckpointRestoreError } from './client/checkpoints.ts'
export type { AutoCheckpoint, AutoCheckpointOptions, WithCheckpointOptions } from './client/checkpoints.ts'
