import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The JSON report is what .ci/run counts; the default reporter is for people.
    reporters: ['default', 'json'],
    outputFile: { json: '.test-results/results.json' },
    // On with `--coverage` (npm test passes it): V8 coverage of the library and the server, as one
    // summary line set on the console and coverage/coverage-summary.json for the README figure.
    // Code run only in child processes (the CLI tests, the packaging test) is not counted.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts', 'server/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
      reportsDirectory: 'coverage',
      // The figure is printed even when a test failed (CI's log shows it either way).
      reportOnFailure: true
    }
  }
})
