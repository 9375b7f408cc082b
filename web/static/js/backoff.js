// Reconnect delays: exponential, jittered (so a room's clients do not all
// come back in the same instant after a gateway dies) and bounded, with a
// last attempt after which the page gives up and offers a Retry button.
//
// A gateway that dies drops thousands of sockets at once, and every one of
// them reconnects to the replicas left: the first reconnect after an unclean
// close is spread over `dropSpread` rather than the first step's half second.
// A gateway that refuses a handshake because too many arrive at once says in
// its 1013's reason when to come back (`retry_after_ms=N`); the client waits
// that long instead of its backoff's delay: the server gives each refused
// client a slot of its own, and a backoff longer than the slot would only
// keep the client away while the server could take it. Such a refusal comes
// from a replica that is up and says when: it is not one of the `attempts`
// after which the page gives up (in a storm, a client may be refused several
// times in a row), but `hinted` of them before a welcome are the most it waits out.

export const BACKOFF = { base: 500, max: 10000, attempts: 8, hinted: 30, dropSpread: 3000 };
/** A retry hint longer than this is read as this: a confused server cannot park a client for hours. */
export const MAX_HINT_MS = 60000;

/** The delay before reconnect number `attempt` (0-based): in [d/2, d], d = min(max, base·2^attempt). */
export function backoffDelay(attempt, { base = BACKOFF.base, max = BACKOFF.max, random = Math.random } = {}) {
  const d = Math.min(max, base * 2 ** Math.max(0, attempt));
  return Math.round(d / 2 + random() * (d / 2));
}

/** The first delay after an unclean close: in [base/2, dropSpread]. */
export function dropDelay({ base = BACKOFF.base, dropSpread = BACKOFF.dropSpread, random = Math.random } = {}) {
  const low = base / 2;
  return Math.round(low + random() * Math.max(0, dropSpread - low));
}

/** The milliseconds a close reason asks the client to wait (`retry_after_ms=N`), or null if it names none. */
export function retryHint(reason) {
  const match = /\bretry_after_ms=(\d+)\b/.exec(String(reason || ''));
  return match ? Math.min(MAX_HINT_MS, Number(match[1])) : null;
}

export class Backoff {
  constructor({
    base = BACKOFF.base, max = BACKOFF.max, attempts = BACKOFF.attempts, hinted = BACKOFF.hinted,
    dropSpread = BACKOFF.dropSpread, random = Math.random,
  } = {}) {
    this.options = { base, max, dropSpread, random };
    this.attempts = attempts;
    this.maxHinted = hinted;
    this.attempt = 0;
    this.hinted = 0;
  }

  /**
   * The next delay, or null once every attempt is used up. `dropped`: the
   * socket closed uncleanly, so a first attempt is spread wider; `hint`:
   * the server's retry hint, the delay instead of the backoff's, counted
   * apart from the attempts: a server that keeps refusing with hints is
   * given up on after `hinted` of them (until `reset`, on a welcome).
   */
  next({ dropped = false, hint = null } = {}) {
    if (this.exhausted) return null;
    if (hint != null) {
      this.hinted += 1;
      return hint;
    }
    let delay;
    if (dropped && this.attempt === 0) delay = dropDelay(this.options);
    else delay = backoffDelay(this.attempt, this.options);
    this.attempt += 1;
    return delay;
  }

  get exhausted() {
    return this.attempt >= this.attempts || this.hinted >= this.maxHinted;
  }

  reset() {
    this.attempt = 0;
    this.hinted = 0;
  }
}
