// One room's WebSocket: connects, reconnects with backoff and ?since=<last
// event id>, and drops events it has already seen. It knows nothing of the
// page; the room view gives it callbacks.

import { compareIds, maxId } from './eventid.js';

const TIMELINE = new Set(['message', 'join', 'leave']);

export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED: 1003,
  TOO_BIG: 1009,
  RESTART: 1012,
  LOGGED_OUT: 4001,
  UNAUTHORIZED: 4401,
  ROOM_CLOSED: 4404,
};

export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(10000, 500 * 2 ** Math.max(0, attempt));
  return Math.round(base / 2 + random() * (base / 2));
}

export function socketUrl(code, since) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  let url = `${scheme}://${location.host}/ws?room=${encodeURIComponent(code)}`;
  if (since) url += `&since=${encodeURIComponent(since)}`;
  return url;
}

/**
 * handlers:
 *   state(state, info)    'connecting' | 'online' | 'reconnecting' | 'offline' | 'paused' | 'closed'
 *   welcome(frame, info)  info: { reconnect, events (new, in order), duplicates, truncated }
 *   event(frame)          a new message/join/leave
 *   ack(frame), error(frame)
 *   end(reason)           'logged_out' | 'unauthorized' | 'room_closed' — no more reconnects
 *   probe()               async; after a failed handshake: 'unauthorized' | 'room_closed' | 'ok'
 */
export class RoomConnection {
  constructor(code, handlers) {
    this.code = code;
    this.h = handlers;
    this.ws = null;
    this.lastId = null;
    this.seen = new Set();
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.paused = false;
    this.everWelcomed = false;
    this.welcomed = false; // on the current socket
    this.duplicates = 0;   // total events dropped as already seen
    this.authFailures = 0; // 4401 closes since the last welcome
    this.history = [];
    this.connects = 0;
    this.lastUrl = null;
    this.onOnline = () => { if (!this.ws && !this.stopped && !this.paused) this.connectNow(); };
    this.onOffline = () => { if (!this.ws) this.setState('offline'); };
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  get online() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.welcomed);
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
    this.history.push({ at: new Date().toISOString(), what, ...info });
    if (this.history.length > 30) this.history.shift();
  }

  connectNow() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped) return;
    this.welcomed = false;
    this.setState(this.everWelcomed ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    const url = socketUrl(this.code, this.lastId);
    this.lastUrl = url;
    this.connects += 1;
    let ws;
    try {
      ws = new WebSocket(url);
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
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    if (!frame || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'welcome': this.onWelcome(frame); break;
      case 'ack': if (this.h.ack) this.h.ack(frame); break;
      case 'error': if (this.h.error) this.h.error(frame); break;
      default:
        if (TIMELINE.has(frame.type)) {
          if (this.accept(frame) && this.h.event) this.h.event(frame);
        }
    }
  }

  /** Record an event; false when it was seen before (a duplicate). */
  accept(frame) {
    const id = frame.id;
    if (id == null) return true;
    const key = String(id);
    if (this.seen.has(key)) {
      this.duplicates += 1;
      return false;
    }
    this.seen.add(key);
    this.lastId = maxId(this.lastId, key);
    return true;
  }

  onWelcome(frame) {
    const reconnect = this.everWelcomed;
    const before = this.duplicates;
    const history = Array.isArray(frame.history) ? frame.history.slice() : [];
    history.sort((a, b) => compareIds(a.id, b.id));
    const events = history.filter((e) => e && TIMELINE.has(e.type) && this.accept(e));
    this.welcomed = true;
    this.everWelcomed = true;
    this.authFailures = 0;
    this.attempt = 0;
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

  onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcomed = false;
    if (this.stopped) return;
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
      this.attempt = 0;
      this.scheduleReconnect(150 + Math.round(Math.random() * 350));
      return undefined;
    }
    if (!ev.wasClean || code === 1006) {
      // The handshake may have been refused (session gone, room gone):
      // ask the HTTP API before trying again.
      return this.probeThenReconnect();
    }
    this.scheduleReconnect(null);
    return undefined;
  }

  probeThenReconnect() {
    this.setState(this.everWelcomed ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    Promise.resolve(this.h.probe ? this.h.probe() : 'ok').then((verdict) => {
      if (this.stopped || this.ws || this.paused) return;
      if (verdict === 'unauthorized') this.end('unauthorized');
      else if (verdict === 'room_closed') this.end('room_closed');
      else this.scheduleReconnect(null);
    }, () => { if (!this.stopped && !this.ws) this.scheduleReconnect(null); });
    return undefined;
  }

  scheduleReconnect(delay) {
    if (this.stopped) return;
    const wait = delay == null ? backoffDelay(this.attempt) : delay;
    this.attempt += 1;
    const offline = navigator.onLine === false;
    this.setState(offline ? 'offline' : 'reconnecting', { attempt: this.attempt, delay: wait });
    clearTimeout(this.timer);
    if (!offline) this.timer = setTimeout(() => this.connectNow(), wait);
  }

  end(reason) {
    this.stopped = true;
    clearTimeout(this.timer);
    this.setState('closed', { reason });
    if (this.h.end) this.h.end(reason);
    this.detach();
  }

  /** Send a chat message; false when not connected. */
  send(text, ref) {
    if (!this.online) return false;
    this.ws.send(JSON.stringify({ type: 'message', text, ref }));
    return true;
  }

  /** Deliberate stop (leaving the room, leaving the page). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try { ws.close(1000, 'leaving'); } catch { /* ignore */ }
    }
    this.detach();
  }

  detach() {
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
  }

  /**
   * Test hook: cut the socket from the client side as if the network
   * dropped. With { pause: true } stay disconnected until resume().
   */
  drop({ pause = false } = {}) {
    this.paused = pause;
    const ws = this.ws;
    if (!ws) {
      if (pause) {
        clearTimeout(this.timer);
        this.setState('paused');
      }
      return;
    }
    // Detach first so the close looks like a lost connection to us.
    this.ws = null;
    this.welcomed = false;
    ws.onmessage = null;
    ws.onclose = null;
    try { ws.close(4000, 'client drop'); } catch { /* ignore */ }
    if (pause) this.setState('paused');
    else this.scheduleReconnect(null);
  }

  resume() {
    this.paused = false;
    if (!this.ws && !this.stopped) this.connectNow();
  }
}
