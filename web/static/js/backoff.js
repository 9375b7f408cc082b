// Reconnect delays: exponential, jittered (so a room's clients do not all
// come back in the same instant after a gateway dies) and bounded, with a
// last attempt after which the page gives up and offers a Retry button.

export const BACKOFF = { base: 500, max: 10000, attempts: 8 };

/** The delay before reconnect number `attempt` (0-based): in [d/2, d], d = min(max, base·2^attempt). */
export function backoffDelay(attempt, { base = BACKOFF.base, max = BACKOFF.max, random = Math.random } = {}) {
  const d = Math.min(max, base * 2 ** Math.max(0, attempt));
  return Math.round(d / 2 + random() * (d / 2));
}

export class Backoff {
  constructor({ base = BACKOFF.base, max = BACKOFF.max, attempts = BACKOFF.attempts, random = Math.random } = {}) {
    this.options = { base, max, random };
    this.attempts = attempts;
    this.attempt = 0;
  }

  /** The next delay, or null once every attempt is used up. */
  next() {
    if (this.attempt >= this.attempts) return null;
    const delay = backoffDelay(this.attempt, this.options);
    this.attempt += 1;
    return delay;
  }

  get exhausted() {
    return this.attempt >= this.attempts;
  }

  reset() {
    this.attempt = 0;
  }
}
