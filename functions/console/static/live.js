// Timers of the page on screen (polling for live updates), stopped when the page changes.
const timers = new Set();

export function every(ms, fn) {
  const id = setInterval(fn, ms);
  timers.add(id);
  return id;
}

export function leave() {
  for (const id of timers) clearInterval(id);
  timers.clear();
}
