// The typing indicator, both ways. Sending is throttled (the server drops
// extras anyway); showing expires on its own unless the typist keeps going.

export const TYPING_SEND_EVERY_MS = 3000;
export const TYPING_SHOW_MS = 5000;

export class TypingSender {
  constructor({ every = TYPING_SEND_EVERY_MS, now = Date.now } = {}) {
    this.every = every;
    this.now = now;
    this.last = -Infinity;
  }

  /** Whether a keystroke now should send a typing frame. */
  shouldSend() {
    const t = this.now();
    if (t - this.last < this.every) return false;
    this.last = t;
    return true;
  }

  /** After a message is sent the next keystroke announces typing again. */
  reset() {
    this.last = -Infinity;
  }
}

export class TypingBoard {
  constructor({ ttl = TYPING_SHOW_MS, now = Date.now } = {}) {
    this.ttl = ttl;
    this.now = now;
    this.until = new Map(); // username -> expiry time
  }

  typing(username) {
    this.until.set(username, this.now() + this.ttl);
  }

  stopped(username) {
    return this.until.delete(username);
  }

  /** Who is typing now, sorted; expired entries are forgotten. */
  active() {
    const t = this.now();
    for (const [name, until] of this.until) if (until <= t) this.until.delete(name);
    return [...this.until.keys()].sort((a, b) => a.localeCompare(b));
  }

  /** Milliseconds until the next entry expires, or null when nobody is typing. */
  nextExpiry() {
    if (!this.until.size) return null;
    return Math.max(0, Math.min(...this.until.values()) - this.now());
  }
}
