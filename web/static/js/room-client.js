// One room's WebSocket: connects, reconnects with a bounded jittered backoff
// and ?since=<last event id>, proves the link alive with ping/pong, and
// drops events at or below the last id it has (ids order a room's events).
// It knows nothing of the page: the room view gives it callbacks, and its
// environment (WebSocket constructor, timers, online/offline events) is
// injected so it runs under node's test runner with fakes.

import { compareIds } from './eventid.js';
import { Backoff, retryHint } from './backoff.js';

const TIMELINE = new Set(['message', 'join', 'leave']);
const OPEN = 1;

/** Close codes of docs/protocol.md. */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED: 1003,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  SERVER_ERROR: 1011,
  RESTART: 1012,
  TRY_AGAIN: 1013,
  LOGGED_OUT: 4001,
  UNAUTHORIZED: 4401,
  ROOM_CLOSED: 4404,
};

/** A ping after this long without a frame; no answer within timeout means the link is dead. */
export const HEARTBEAT = { every: 5000, timeout: 4000 };
/** How long an explicit leave waits for the server's close before closing itself. */
export const LEAVE_WAIT_MS = 1500;

export function socketUrl(code, since, loc = globalThis.location) {
  const scheme = loc.protocol === 'https:' ? 'wss' : 'ws';
  let url = `${scheme}://${loc.host}/ws?room=${encodeURIComponent(code)}`;
  if (since) url += `&since=${encodeURIComponent(since)}`;
  return url;
}

function browserEnv() {
  return {
    // Looked up at each connect, so a page (or a test) may replace it.
    WebSocket: function BrowserSocket(url) { return new globalThis.WebSocket(url); },
    url: socketUrl,
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (id) => globalThis.clearTimeout(id),
    random: Math.random,
    events: globalThis.window,
    isOnline: () => globalThis.navigator?.onLine !== false,
    now: () => new Date().toISOString(),
  };
}

/**
 * handlers:
 *   state(state, info)    'connecting' | 'online' | 'reconnecting' | 'offline' | 'paused' | 'failed' | 'closed'
 *                         ('failed': the backoff ran out; retry() starts again)
 *   welcome(frame, info)  info: { reconnect, events (new, in order), duplicates, truncated }
 *   event(frame)          a new message/join/leave
 *   ack(frame), error(frame), typing(frame)
 *   end(reason)           'logged_out' | 'unauthorized' | 'room_closed' | 'left': no more reconnects
 *   probe()               async; after a failed handshake: 'unauthorized' | 'room_closed' | 'ok'
 */
export class RoomConnection {
  constructor(code, handlers, env = {}) {
    this.code = code;
    this.h = handlers;
    this.env = { ...browserEnv(), ...env };
    this.heartbeat = { ...HEARTBEAT, ...(env.heartbeat || {}) };
    this.backoff = env.backoff || new Backoff({ random: this.env.random });
    this.ws = null;
    this.lastId = null;
    this.timer = null;
    this.pingTimer = null;
    this.deadTimer = null;
    this.stopped = false;
    this.paused = false;
    this.everWelcomed = false;
    this.welcomed = false; // on the current socket
    this.duplicates = 0;   // events dropped as already seen
    this.authFailures = 0; // 4401 closes since the last welcome
    this.history = [];
    this.connects = 0;
    this.lastUrl = null;
    this.state = null;
    this.onOnline = () => {
      if (this.ws || this.stopped || this.paused) return;
      this.backoff.reset();
      this.connectNow();
    };
    this.onOffline = () => {
      if (this.stopped || this.paused) return;
      // A socket may take minutes to notice the network is gone: trust the browser.
      this.abandonSocket(4000, 'offline');
      this.env.clearTimeout(this.timer);
      this.setState('offline');
    };
    if (this.env.events) {
      this.env.events.addEventListener('online', this.onOnline);
      this.env.events.addEventListener('offline', this.onOffline);
    }
  }

  get online() {
    return Boolean(this.ws && this.ws.readyState === OPEN && this.welcomed);
  }

  setState(state, info = {}) {
    this.state = state;
    this.trace(state, info);
    if (this.h.state) this.h.state(state, info);
  }

  start() {
    this.connectNow();
  }

  /** Keep the last few state changes and close codes (shown by window.__sala.roomInfo()). */
  trace(what, info = {}) {
    this.history.push({ at: this.env.now(), what, ...info });
    if (this.history.length > 30) this.history.shift();
  }

  connectNow() {
    this.env.clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped) return;
    if (!this.env.isOnline()) {
      this.setState('offline');
      return;
    }
    this.welcomed = false;
    this.setState(this.everWelcomed ? 'reconnecting' : 'connecting', { attempt: this.backoff.attempt });
    const url = this.env.url(this.code, this.lastId);
    this.lastUrl = url;
    this.connects += 1;
    let ws;
    try {
      ws = new this.env.WebSocket(url);
    } catch {
      this.scheduleReconnect(null);
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.onFrame(ws, ev);
    ws.onclose = (ev) => this.onClose(ws, ev);
    ws.onerror = () => { /* onclose follows */ };
  }

  onFrame(ws, ev) {
    if (ws !== this.ws || typeof ev.data !== 'string') return;
    this.alive();
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    if (!frame || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'welcome': this.onWelcome(frame); break;
      case 'pong': break;
      case 'ack': if (this.h.ack) this.h.ack(frame); break;
      case 'error': if (this.h.error) this.h.error(frame); break;
      case 'typing': if (this.h.typing) this.h.typing(frame); break;
      default:
        if (TIMELINE.has(frame.type) && this.accept(frame) && this.h.event) this.h.event(frame);
    }
  }

  /** Whether an event is new: ids order a room's events, so one at or below the last is a duplicate. */
  accept(frame) {
    if (frame.id == null) return true;
    const id = String(frame.id);
    if (this.lastId != null && compareIds(id, this.lastId) <= 0) {
      this.duplicates += 1;
      return false;
    }
    this.lastId = id;
    return true;
  }

  onWelcome(frame) {
    const reconnect = this.everWelcomed;
    const before = this.duplicates;
    const history = Array.isArray(frame.history) ? frame.history.filter((e) => e && TIMELINE.has(e.type)) : [];
    history.sort((a, b) => compareIds(a.id, b.id));
    const events = history.filter((e) => this.accept(e));
    this.welcomed = true;
    this.everWelcomed = true;
    this.authFailures = 0;
    this.backoff.reset();
    this.setState('online');
    if (this.h.welcome) {
      this.h.welcome(frame, {
        reconnect,
        events,
        duplicates: this.duplicates - before,
        truncated: Boolean(frame.truncated),
      });
    }
  }

  /** Any frame proves the link: wait a full interval before the next ping. */
  alive() {
    this.env.clearTimeout(this.deadTimer);
    this.deadTimer = null;
    this.env.clearTimeout(this.pingTimer);
    this.pingTimer = this.env.setTimeout(() => this.ping(), this.heartbeat.every);
  }

  ping() {
    this.pingTimer = null;
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    try { ws.send(JSON.stringify({ type: 'ping' })); } catch { /* the close follows */ }
    this.env.clearTimeout(this.deadTimer);
    this.deadTimer = this.env.setTimeout(() => this.dead(), this.heartbeat.timeout);
  }

  /** No pong in time: the link is silently gone. Drop it and reconnect with since. */
  dead() {
    this.deadTimer = null;
    if (!this.ws || this.stopped) return;
    this.trace('heartbeat-timeout');
    this.abandonSocket(4000, 'no pong');
    this.scheduleReconnect(null);
  }

  stopHeartbeat() {
    this.env.clearTimeout(this.pingTimer);
    this.env.clearTimeout(this.deadTimer);
    this.pingTimer = null;
    this.deadTimer = null;
  }

  /** Forget the current socket without waiting for its close event. */
  abandonSocket(code, reason) {
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    this.stopHeartbeat();
    if (!ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    try { ws.close(code, reason); } catch { /* already closing */ }
  }

  onClose(ws, ev) {
    if (ws !== this.ws) return undefined;
    this.ws = null;
    this.welcomed = false;
    this.stopHeartbeat();
    if (this.stopped) return undefined;
    const code = ev.code;
    this.trace('closed', { code, clean: ev.wasClean });
    if (code === CLOSE.LOGGED_OUT) return this.end('logged_out');
    if (code === CLOSE.ROOM_CLOSED) return this.end('room_closed');
    if (this.paused) {
      this.setState('paused');
      return undefined;
    }
    if (code === CLOSE.UNAUTHORIZED) {
      // The access token may just have expired: the probe refreshes it if it
      // can. Refused again and again all the same: the session is over.
      this.authFailures += 1;
      if (this.authFailures >= 3) return this.end('unauthorized');
      return this.probeThenReconnect();
    }
    if (code === CLOSE.RESTART) {
      // The replica is going away: come back at once through another one.
      this.backoff.reset();
      this.scheduleReconnect(150 + Math.round(this.env.random() * 350));
      return undefined;
    }
    if (!ev.wasClean || code === 1006) {
      // The replica may have died under thousands of sockets: the first
      // attempt is spread wider. The handshake may have been refused
      // (session gone, room gone): the HTTP API is asked at the end of the
      // wait, not at once, so that auth and rooms see a storm's questions
      // spread as the sockets are.
      this.scheduleReconnect(null, { dropped: true }, { probeFirst: true });
      return undefined;
    }
    // A 1013 may say when to come back (the replica refuses handshakes beyond its rate).
    const hint = code === CLOSE.TRY_AGAIN ? retryHint(ev.reason) : null;
    this.scheduleReconnect(null, { hint });
    return undefined;
  }

  /** After a refused token: ask the HTTP API (which refreshes the token if it can), then the backoff. */
  probeThenReconnect() {
    this.setState(this.everWelcomed ? 'reconnecting' : 'connecting', { attempt: this.backoff.attempt });
    this.probe(() => this.scheduleReconnect(null));
    return undefined;
  }

  /** Ask the HTTP API whether the session and the room still exist: end if not, else `next()`. */
  probe(next) {
    Promise.resolve(this.h.probe ? this.h.probe() : 'ok').then((verdict) => {
      if (this.stopped || this.ws || this.paused) return;
      if (verdict === 'unauthorized') this.end('unauthorized');
      else if (verdict === 'room_closed') this.end('room_closed');
      else next();
    }, () => { if (!this.stopped && !this.ws && !this.paused) next(); });
  }

  /**
   * Reconnect after delay (null: the backoff's next, paced by `pace`, see
   * Backoff.next); give up when it is spent. `probeFirst`: ask the HTTP API
   * at the end of the wait, before the handshake.
   */
  scheduleReconnect(delay, pace = {}, { probeFirst = false } = {}) {
    if (this.stopped) return;
    this.env.clearTimeout(this.timer);
    this.timer = null;
    if (!this.env.isOnline()) {
      this.setState('offline');
      return;
    }
    const wait = delay == null ? this.backoff.next(pace) : delay;
    if (wait == null) {
      this.setState('failed', { attempt: this.backoff.attempt });
      return;
    }
    this.setState('reconnecting', { attempt: this.backoff.attempt, delay: wait });
    this.timer = this.env.setTimeout(() => (probeFirst ? this.probe(() => this.connectNow()) : this.connectNow()), wait);
  }

  /** After a give-up: start again with a fresh backoff. */
  retry() {
    if (this.stopped || this.ws) return;
    this.paused = false;
    this.backoff.reset();
    this.connectNow();
  }

  end(reason) {
    this.stopped = true;
    this.env.clearTimeout(this.timer);
    this.stopHeartbeat();
    this.setState('closed', { reason });
    if (this.h.end) this.h.end(reason);
    this.detach();
  }

  /** Send a chat message; false when not connected. */
  send(text, ref) {
    return this.sendFrame({ type: 'message', text, ref });
  }

  sendTyping() {
    return this.sendFrame({ type: 'typing' });
  }

  sendFrame(frame) {
    if (!this.online) return false;
    try {
      this.ws.send(JSON.stringify(frame));
    } catch {
      return false;
    }
    return true;
  }

  /**
   * Explicit leave: tell the server (which announces it at once and closes
   * with 1000), then stop. Resolves once the server closed the socket, or
   * after LEAVE_WAIT_MS.
   */
  leave() {
    const ws = this.ws;
    if (!this.online) {
      this.stop();
      return Promise.resolve(false);
    }
    this.stopped = true;
    this.env.clearTimeout(this.timer);
    this.stopHeartbeat();
    this.detach();
    return new Promise((resolve) => {
      const done = () => {
        this.env.clearTimeout(waiter);
        ws.onclose = null;
        this.ws = null;
        resolve(true);
      };
      const waiter = this.env.setTimeout(() => {
        try { ws.close(CLOSE.NORMAL, 'left'); } catch { /* already closed */ }
        done();
      }, LEAVE_WAIT_MS);
      ws.onmessage = null;
      ws.onclose = done;
      try {
        ws.send(JSON.stringify({ type: 'leave' }));
      } catch {
        done();
      }
    });
  }

  /** Deliberate stop without a leave (leaving the page): the server's grace keeps us present. */
  stop() {
    this.stopped = true;
    this.env.clearTimeout(this.timer);
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try { ws.close(CLOSE.NORMAL, 'page closed'); } catch { /* ignore */ }
    }
    this.detach();
  }

  detach() {
    if (!this.env.events) return;
    this.env.events.removeEventListener('online', this.onOnline);
    this.env.events.removeEventListener('offline', this.onOffline);
  }

  /**
   * Test hook: cut the socket from the client side as if the network
   * dropped. With { pause: true } stay disconnected until resume().
   */
  drop({ pause = false } = {}) {
    this.paused = pause;
    if (!this.ws) {
      if (pause) {
        this.env.clearTimeout(this.timer);
        this.setState('paused');
      }
      return;
    }
    this.abandonSocket(4000, 'client drop');
    if (pause) this.setState('paused');
    else this.scheduleReconnect(null);
  }

  resume() {
    this.paused = false;
    if (!this.ws && !this.stopped) this.connectNow();
  }
}
