/**
 * RFC 6902 JSON Patch against a workflow document. Ops are first validated and applied to a JSON
 * copy with fast-json-patch (so a failing op writes nothing), then replayed as Yjs operations so
 * that `remove /tasks/0` removes exactly that element even while others edit the list.
 */
import * as Y from 'yjs'
import jsonpatch from 'fast-json-patch'
import type { Operation } from 'fast-json-patch'
import { InvalidPatchError } from './errors.ts'
import type { JsonObject, JsonValue } from './json.ts'
import { isPlainObject } from './json.ts'
import { setAt, setMapContents, toYValue, yToJson } from './json-yjs.ts'

export type PatchOperation = Operation

/** Applies `ops` to a copy of `current`; throws `InvalidPatchError` when they do not apply. */
export const applyPatchToJson = (current: JsonObject, ops: unknown): JsonObject => {
  if (!Array.isArray(ops)) throw new InvalidPatchError('a JSON patch must be an array of operations')
  let result: unknown = jsonpatch.deepClone(current)
  try {
    // The ops are copied too: fast-json-patch inserts op values by reference, so a later op
    // editing inside an earlier op's value would otherwise rewrite the caller's ops.
    // One at a time (as applyPatch does), each move and copy checked against the state before it.
    const copies = structuredClone(ops) as Operation[]
    copies.forEach((op, index) => {
      checkMoveOrCopyTarget(result, op, index)
      result = jsonpatch.applyOperation(result, op, true, true, true, index).newDocument
    })
  } catch (err) {
    const e = err as { name?: string, message?: string, index?: number, operation?: unknown }
    throw new InvalidPatchError(`invalid patch: ${(e.message ?? String(err)).split('\n')[0]}`,
      { reason: e.name, index: e.index, operation: e.operation }, { cause: err })
  }
  if (!isPlainObject(result)) throw new InvalidPatchError('a patch may not replace the root with a non-object')
  return result as JsonObject
}

const parsePointer = (pointer: string): string[] =>
  pointer === '' ? [] : pointer.slice(1).split('/').map(t => t.replace(/~1/g, '/').replace(/~0/g, '~'))

/**
 * fast-json-patch checks the array index of an `add`, but not the one a `move` or `copy` adds at
 * (it appends instead), while Y.Array.insert throws past the end: the Yjs replay would fail half
 * way, after a move had removed its source. RFC 6902 refuses such an index, so we do, before
 * anything is written. (A move out of the same array makes it one shorter first.)
 */
const checkMoveOrCopyTarget = (doc: unknown, op: Operation, index: number): void => {
  if (op === null || typeof op !== 'object' || (op.op !== 'move' && op.op !== 'copy')) return
  const { path, from } = op as { path: unknown, from: unknown }
  if (typeof path !== 'string' || typeof from !== 'string' || !path.startsWith('/')) return
  const target = parsePointer(path)
  const key = target.pop() as string
  let parent = doc
  for (const token of target) {
    // Unresolvable: fast-json-patch reports that itself.
    if (parent === null || typeof parent !== 'object' || !Object.hasOwn(parent, token)) return
    parent = (parent as Record<string, unknown>)[token]
  }
  if (!Array.isArray(parent) || key === '-') return
  const source = parsePointer(from)
  source.pop()
  const sameArray = op.op === 'move' && source.length === target.length && source.every((t, i) => t === target[i])
  const length = parent.length - (sameArray ? 1 : 0)
  if (!/^[0-9]+$/.test(key) || Number(key) > length) {
    throw new jsonpatch.JsonPatchError(`Cannot ${op.op} to index ${key} of an array of length ${length}`, 'OPERATION_VALUE_OUT_OF_BOUNDS', index, op, doc)
  }
}

type Container = Y.Map<unknown> | Y.Array<unknown>

const resolve = (root: Y.Map<unknown>, tokens: string[]): unknown => {
  let node: unknown = root
  for (const t of tokens) {
    if (node instanceof Y.Map) node = node.get(t)
    else if (node instanceof Y.Array) node = node.get(Number(t))
    else throw new InvalidPatchError(`path does not resolve: /${tokens.join('/')}`)
  }
  return node
}

const parentOf = (root: Y.Map<unknown>, pointer: string): { parent: Container, key: string } => {
  const tokens = parsePointer(pointer)
  const key = tokens.pop() as string
  const parent = resolve(root, tokens)
  if (!(parent instanceof Y.Map) && !(parent instanceof Y.Array)) {
    throw new InvalidPatchError(`parent of ${pointer} is not a container`)
  }
  return { parent, key }
}

const add = (root: Y.Map<unknown>, pointer: string, value: JsonValue): void => {
  if (pointer === '') {
    setMapContents(root, value as JsonObject)
    return
  }
  const { parent, key } = parentOf(root, pointer)
  if (parent instanceof Y.Map) setAt(parent, key, value)
  else parent.insert(key === '-' ? parent.length : Number(key), [toYValue(value)])
}

const remove = (root: Y.Map<unknown>, pointer: string): JsonValue => {
  const { parent, key } = parentOf(root, pointer)
  if (parent instanceof Y.Map) {
    const old = yToJson(parent.get(key))
    parent.delete(key)
    return old
  }
  const old = yToJson(parent.get(Number(key)))
  parent.delete(Number(key), 1)
  return old
}

/**
 * Replays already validated ops on the Yjs state root. Call inside a transaction, after
 * `applyPatchToJson` succeeded on the same state.
 */
export const applyPatchToYjs = (root: Y.Map<unknown>, ops: Operation[]): void => {
  for (const op of ops) {
    switch (op.op) {
      case 'add':
        add(root, op.path, op.value as JsonValue)
        break
      case 'remove':
        remove(root, op.path)
        break
      case 'replace':
        if (op.path === '') setMapContents(root, op.value as JsonObject)
        else {
          const { parent, key } = parentOf(root, op.path)
          setAt(parent, parent instanceof Y.Array ? Number(key) : key, op.value as JsonValue)
        }
        break
      case 'move':
        if (op.from !== op.path) add(root, op.path, remove(root, op.from))
        break
      case 'copy':
        add(root, op.path, yToJson(resolve(root, parsePointer(op.from))))
        break
      case 'test':
      case '_get':
        break
    }
  }
}
