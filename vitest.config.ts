import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "gateway/**/*.test.ts", "services/**/*.test.ts", "shared/**/*.test.ts", "scripts/**/*.test.ts"],
    // Kills what a test that timed out left running (see test/setup.ts).
    setupFiles: ["test/setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
  },
});
