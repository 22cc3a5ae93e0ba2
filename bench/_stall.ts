// The longest a process went without running a 50 ms timer: how long it was
// too busy, or too starved of CPU, to do anything else (bench/soak.ts's
// server and good clients report it).

/** Starts watching; the returned function stops and gives the longest, in ms. */
export function watchStalls(): () => number {
  let longest = 0;
  let tick = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - tick - 50);
    tick = now;
  }, 50);
  return () => {
    clearInterval(timer);
    return Math.round(longest);
  };
}
