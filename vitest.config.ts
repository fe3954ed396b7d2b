import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration files start real processes; two at a time suits a 2-core machine.
    maxWorkers: 2,
    reporters: ['default'],
    // Every answer and live frame the tests see is checked against /openapi.json and /asyncapi.json.
    setupFiles: ['test/support/contract-setup.ts'],
  },
});
