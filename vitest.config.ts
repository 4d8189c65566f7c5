import { defineConfig } from 'vitest/config';

// Tests run against the TypeScript sources; the few that spawn the worker as a child
// process use dist/ (built by `npm test` before vitest starts), the same files the
// Procfile runs.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
