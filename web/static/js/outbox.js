// Own messages not yet stored. Each has a ref the server makes idempotent
// (a resend with the same ref is acked with the original id and stored
// once), so anything unacked is simply sent again after a reconnect.
//
// Reconciliation: the server may deliver our own message back to us (live
// or in the history of a reconnect) before its ack; it carries no ref, so
// it is matched to the oldest sent entry with the same text. The ack that
// follows then finds nothing and is ignored.

export class Outbox {
  constructor() {
    this.items = new Map(); // ref -> { ref, text, state: 'queued' | 'sent' | 'failed' }
  }

  get size() {
    return this.items.size;
  }

  get(ref) {
    return this.items.get(ref) || null;
  }

  add(ref, text) {
    const item = { ref, text, state: 'queued' };
    this.items.set(ref, item);
    return item;
  }

  /** Send every queued entry with send(item) -> bool; returns the entries sent. */
  flush(send) {
    const sent = [];
    for (const item of this.items.values()) {
      if (item.state !== 'queued') continue;
      if (!send(item)) break;
      item.state = 'sent';
      sent.push(item);
    }
    return sent;
  }

  /** The connection is gone: whatever was sent without an ack must go again. */
  requeue() {
    const moved = [];
    for (const item of this.items.values()) {
      if (item.state === 'sent') {
        item.state = 'queued';
        moved.push(item);
      }
    }
    return moved;
  }

  /** The ack for ref: the entry it confirms (now removed), or null. */
  ack(ref) {
    const item = this.items.get(ref);
    if (!item) return null;
    this.items.delete(ref);
    return item;
  }

  /** Our own message came back from the server: the entry it stands for (now removed), or null. */
  echo(text) {
    for (const item of this.items.values()) {
      if (item.state !== 'failed' && item.text === text) {
        this.items.delete(item.ref);
        return item;
      }
    }
    return null;
  }

  fail(ref) {
    const item = this.items.get(ref);
    if (item) item.state = 'failed';
    return item || null;
  }

  retry(ref) {
    const item = this.items.get(ref);
    if (item) item.state = 'queued';
    return item || null;
  }
}
