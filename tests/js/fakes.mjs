// Small fakes of the client's seams: a manual clock and a WebSocket the test drives.

export class Clock {
  constructor() {
    this.now = 0;
    this.seq = 0;
    this.timers = new Map();
  }

  setTimeout = (fn, ms) => {
    this.seq += 1;
    this.timers.set(this.seq, { at: this.now + ms, fn });
    return this.seq;
  };

  clearTimeout = (id) => {
    this.timers.delete(id);
  };

  /** Move time forward, running due timers in order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }
}

export function fakeSocketClass() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(JSON.parse(data));
    }

    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }

    open() {
      this.readyState = 1;
    }

    receive(frame) {
      this.onmessage({ data: JSON.stringify(frame) });
    }

    serverClose(code, wasClean = true, reason = '') {
      this.readyState = 3;
      if (this.onclose) this.onclose({ code, wasClean, reason });
    }

    sentOf(type) {
      return this.sent.filter((f) => f.type === type);
    }
  }
  return { FakeSocket, sockets };
}

export class FakeEvents {
  constructor() {
    this.listeners = new Map();
  }

  addEventListener(type, fn) {
    this.listeners.set(type, fn);
  }

  removeEventListener(type) {
    this.listeners.delete(type);
  }

  fire(type) {
    const fn = this.listeners.get(type);
    if (fn) fn();
  }
}
