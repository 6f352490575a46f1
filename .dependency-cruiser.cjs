/**
 * The allowed import directions between Accord's layers, checked in .ci/run:
 *
 *   npx depcruise src server --config .dependency-cruiser.cjs
 *
 * Type-only imports count (tsPreCompilationDeps): a type cycle is still a cycle for the reader,
 * and a type import that points the wrong way is the first step of a value import that does.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles, type-only imports included.',
      from: {},
      to: {
        circular: true
      }
    },
    {
      name: 'model-is-the-bottom',
      severity: 'error',
      comment: 'src/model (errors, schemas, JSON <-> Yjs) imports nothing else of ours.',
      from: { path: '^src/model/' },
      to: { path: '^(src|server)/', pathNot: '^src/model/' }
    },
    {
      name: 'client-only-on-model',
      severity: 'error',
      comment: 'The SDK (src/client) builds on src/model only: it must bundle for browsers.',
      from: { path: '^src/client/' },
      to: { path: '^(src|server)/', pathNot: '^src/(model|client)/' }
    },
    {
      name: 'store-only-on-model',
      severity: 'error',
      comment: 'The stores (src/store) are shared by the Node cache and the server: model only.',
      from: { path: '^src/store/' },
      to: { path: '^(src|server)/', pathNot: '^src/(model|store)/' }
    },
    {
      name: 'node-sdk-on-model-client-store',
      severity: 'error',
      comment: 'The Node SDK entry (src/node) is the client plus the LevelDB offline cache.',
      from: { path: '^src/node/' },
      to: { path: '^(src|server)/', pathNot: '^src/(model|client|store|node)/|^src/sdk\\.ts$' }
    },
    {
      name: 'src-never-imports-server',
      severity: 'error',
      comment: 'The SDK never loads server code.',
      from: { path: '^src/' },
      to: { path: '^server/' }
    },
    {
      name: 'server-not-on-the-sdk',
      severity: 'error',
      comment: 'The server uses model and store, not the SDK; only the CLI (accord get) does.',
      from: { path: '^server/', pathNot: '^server/ops/' },
      to: { path: '^src/(client|node)/|^src/(index|sdk)\\.ts$' }
    },
    {
      name: 'hooks-chosen-by-create-server',
      severity: 'error',
      comment: 'After-commit hooks (server/hooks) are wired by createServer alone: workflows and the registry know only the CommitHook interface (server/sync/commit-hooks.ts).',
      from: { path: '^server/', pathNot: '^server/(server|options)\\.ts$|^server/hooks/' },
      to: { path: '^server/hooks/' }
    },
    {
      name: 'workers-wired-by-serve',
      comment: 'The process layer of accord serve --workers (server/workers: primary, pool, routing, worker) is started by the CLI alone; the server it runs knows nothing of it.',
      severity: 'error',
      from: { path: '^server/', pathNot: '^server/(ops|workers)/' },
      to: { path: '^server/workers/' }
    },
    {
      name: 'hooks-not-on-http',
      severity: 'error',
      comment: 'A hook reacts to a commit; it does not reach into the HTTP layer.',
      from: { path: '^server/hooks/' },
      to: { path: '^server/http/' }
    },
    {
      name: 'browser-entry-stays-light',
      severity: 'error',
      comment: 'src/index.ts (the browser SDK) must not reach the Node cache, the stores, ws, level or node: builtins.',
      from: { path: '^src/index\\.ts$' },
      to: {
        reachable: true,
        path: '^src/(node|store)/|(^|/)node_modules/(ws|level|classic-level|abstract-level|pg|ioredis|prom-client|jose)/'
      }
    },
    {
      name: 'browser-entry-no-node-builtins',
      severity: 'error',
      // The browser half is exactly src/model, src/client and the two shared entry files (the rule
      // above keeps src/index.ts from reaching anything else).
      comment: 'No node: builtin (fs, path, crypto, ...) in the browser half of the SDK.',
      from: { path: '^src/(model|client)/|^src/(index|sdk)\\.ts$' },
      to: { dependencyTypes: ['core'] }
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve is a broken build.',
      from: {},
      to: { couldNotResolve: true }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts']
    },
    exclude: { path: '^(dist|node_modules)/' }
  }
}
