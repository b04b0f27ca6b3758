/**
 * Pauses that `wake` cuts short, every one under way (the event runtime's
 * back-off between stream setups, woken by a reconnect: what failed while
 * NATS was away may work now). A wake while no pause is under way does
 * nothing: the next pause runs its time.
 */
export function wakeablePause(): { pause(ms: number): Promise<void>; wake(): void } {
  const waiting = new Set<() => void>();
  return {
    pause: (ms) =>
      new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiting.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        waiting.add(done);
      }),
    wake: () => {
      for (const done of [...waiting]) done();
    },
  };
}
