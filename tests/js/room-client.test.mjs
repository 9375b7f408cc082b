import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLOSE, RoomConnection } from '../../web/static/js/room-client.js';
import { Backoff } from '../../web/static/js/backoff.js';
import { Clock, FakeEvents, fakeSocketClass } from './fakes.mjs';

function setup({ attempts = 3, handlers = {} } = {}) {
  const clock = new Clock();
  const { FakeSocket, sockets } = fakeSocketClass();
  const events = new FakeEvents();
  let online = true;
  const seen = { states: [], events: [], welcomes: [], ends: [], typing: [] };
  const conn = new RoomConnection('ACDEFG', {
    state: (s) => seen.states.push(s),
    welcome: (frame, info) => seen.welcomes.push(info),
    event: (frame) => seen.events.push(frame.id),
    end: (reason) => seen.ends.push(reason),
    typing: (frame) => seen.typing.push(frame.username),
    probe: async () => 'ok',
    ...handlers,
  }, {
    WebSocket: FakeSocket,
    url: (code, since) => `ws://t/ws?room=${code}${since ? `&since=${since}` : ''}`,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    events,
    isOnline: () => online,
    now: () => String(clock.now),
    heartbeat: { every: 5000, timeout: 4000 },
    backoff: new Backoff({ attempts, random: () => 0.5 }),
  });
  const welcome = (ws, history = []) => {
    ws.open();
    ws.receive({ type: 'welcome', room: { code: 'ACDEFG' }, you: 'ana', members: ['ana'], history });
  };
  return { clock, sockets, events, conn, seen, welcome, setOnline: (v) => { online = v; } };
}

/** Let the probe's promise and its verdict run. */
const settle = async () => { for (let i = 0; i < 3; i += 1) await Promise.resolve(); };

const msg = (id) => ({ type: 'message', id, username: 'bo', text: id, ts: '2024-01-01T00:00:00Z' });

test('events at or below the last id are dropped, without a growing set', () => {
  const { sockets, conn, seen, welcome } = setup();
  conn.start();
  welcome(sockets[0], [msg('2-0'), msg('1-0')]);
  assert.deepEqual(seen.welcomes[0].events.map((e) => e.id), ['1-0', '2-0']);
  sockets[0].receive(msg('10-0'));
  sockets[0].receive(msg('9-0'));
  sockets[0].receive(msg('10-0'));
  assert.deepEqual(seen.events, ['10-0']);
  assert.equal(conn.lastId, '10-0');
  assert.equal(conn.duplicates, 2);
  assert.equal(conn.seen, undefined);
});

test('a reconnect asks for what came after the last id and counts replays as duplicates', () => {
  const { clock, sockets, conn, seen, welcome } = setup();
  conn.start();
  welcome(sockets[0], [msg('5-0')]);
  sockets[0].serverClose(CLOSE.TRY_AGAIN);
  assert.equal(conn.state, 'reconnecting');
  clock.advance(10_000);
  assert.equal(sockets.length, 2);
  assert.match(sockets[1].url, /since=5-0$/);
  welcome(sockets[1], [msg('5-0'), msg('6-0')]);
  const info = seen.welcomes[1];
  assert.ok(info.reconnect);
  assert.deepEqual(info.events.map((e) => e.id), ['6-0']);
  assert.equal(info.duplicates, 1);
});

test('a silent link is noticed by the heartbeat and replaced', () => {
  const { clock, sockets, conn, welcome } = setup();
  conn.start();
  welcome(sockets[0]);
  clock.advance(5000);
  assert.deepEqual(sockets[0].sentOf('ping'), [{ type: 'ping' }]);
  sockets[0].receive({ type: 'pong' });
  clock.advance(4500);
  assert.equal(conn.state, 'online', 'a pong keeps it alive');
  clock.advance(500 + 4000);
  assert.equal(sockets[0].sentOf('ping').length, 2);
  assert.ok(sockets[0].closedWith, 'no pong: the socket is dropped');
  assert.equal(conn.state, 'reconnecting');
  clock.advance(1000);
  assert.equal(sockets.length, 2);
});

test('offline: the socket is dropped at once, nothing is tried until online', () => {
  const { clock, sockets, events, conn, welcome, setOnline } = setup();
  conn.start();
  welcome(sockets[0]);
  setOnline(false);
  events.fire('offline');
  assert.equal(conn.state, 'offline');
  assert.ok(sockets[0].closedWith);
  assert.equal(conn.send('x', 'r'), false);
  clock.advance(60_000);
  assert.equal(sockets.length, 1);
  setOnline(true);
  events.fire('online');
  assert.equal(sockets.length, 2);
  assert.equal(conn.state, 'reconnecting');
});

test('after the bounded backoff the client gives up until retry()', () => {
  const { clock, sockets, conn, welcome } = setup({ attempts: 2 });
  conn.start();
  welcome(sockets[0]);
  for (let i = 0; i < 3; i += 1) {
    sockets.at(-1).serverClose(CLOSE.SERVER_ERROR);
    clock.advance(60_000);
  }
  assert.equal(conn.state, 'failed');
  assert.equal(sockets.length, 3);
  clock.advance(600_000);
  assert.equal(sockets.length, 3, 'no endless retrying');
  conn.retry();
  assert.equal(sockets.length, 4);
  welcome(sockets[3]);
  assert.equal(conn.state, 'online');
});

test('explicit leave sends a leave frame and waits for the server to close', async () => {
  const { sockets, conn, welcome } = setup();
  conn.start();
  welcome(sockets[0]);
  const done = conn.leave();
  assert.deepEqual(sockets[0].sentOf('leave'), [{ type: 'leave' }]);
  sockets[0].serverClose(CLOSE.NORMAL);
  assert.equal(await done, true);
  assert.ok(conn.stopped);
});

test('leaving the page (stop) closes without a leave frame', () => {
  const { sockets, conn, welcome } = setup();
  conn.start();
  welcome(sockets[0]);
  conn.stop();
  assert.deepEqual(sockets[0].sentOf('leave'), []);
  assert.equal(sockets[0].closedWith.code, CLOSE.NORMAL);
});

test('room closed and logged out end the connection; 1012 reconnects at once', () => {
  const a = setup();
  a.conn.start();
  a.welcome(a.sockets[0]);
  a.sockets[0].serverClose(CLOSE.RESTART);
  a.clock.advance(500);
  assert.equal(a.sockets.length, 2);
  a.sockets[1].serverClose(CLOSE.ROOM_CLOSED);
  assert.deepEqual(a.seen.ends, ['room_closed']);
  assert.equal(a.conn.state, 'closed');
  const b = setup();
  b.conn.start();
  b.sockets[0].serverClose(CLOSE.LOGGED_OUT);
  assert.deepEqual(b.seen.ends, ['logged_out']);
});

test('typing frames reach the handler; messages and typing are only sent when online', () => {
  const { sockets, conn, seen, welcome } = setup();
  conn.start();
  assert.equal(conn.sendTyping(), false);
  welcome(sockets[0]);
  assert.ok(conn.sendTyping());
  assert.ok(conn.send('hi', 'r1'));
  assert.deepEqual(sockets[0].sent, [{ type: 'typing' }, { type: 'message', text: 'hi', ref: 'r1' }]);
  sockets[0].receive({ type: 'typing', username: 'bo' });
  assert.deepEqual(seen.typing, ['bo']);
});

test('a 1013 with a retry hint is not retried before the hint', () => {
  const { clock, sockets, conn, welcome } = setup();
  conn.start();
  welcome(sockets[0]);
  sockets[0].serverClose(CLOSE.TRY_AGAIN, true, 'too many handshakes on this replica; retry_after_ms=4000');
  assert.equal(conn.state, 'reconnecting');
  clock.advance(3999);
  assert.equal(sockets.length, 1, 'the backoff alone would have tried after 375 ms');
  clock.advance(1);
  assert.equal(sockets.length, 2);
  welcome(sockets[1]);
  assert.equal(conn.state, 'online');
});

test('a hint shorter than the backoff is followed too', () => {
  const { clock, sockets, conn, welcome } = setup({ attempts: 8 });
  conn.start();
  welcome(sockets[0]);
  for (let i = 0; i < 4; i += 1) {
    sockets.at(-1).serverClose(CLOSE.TRY_AGAIN, true, 'too many handshakes on this replica; retry_after_ms=40');
    clock.advance(40);
  }
  assert.equal(sockets.length, 5, 'the fourth backoff step would have waited 2-4 s');
});

test('the first reconnect after an unclean close is spread wider than the backoff\'s first step', async () => {
  const { clock, sockets, conn, welcome } = setup();
  conn.start();
  welcome(sockets[0]);
  sockets[0].serverClose(1006, false);
  clock.advance(1000);
  await settle();
  assert.equal(sockets.length, 1, 'random 0.5 of [250, 3000] ms is 1625 ms');
  clock.advance(625);
  await settle();
  assert.equal(sockets.length, 2);
  sockets[1].serverClose(1006, false);
  clock.advance(750);
  await settle();
  assert.equal(sockets.length, 3, 'the next attempt is the backoff\'s second step');
});

test('after an unclean close the HTTP API is asked at the end of the wait, not at once', async () => {
  let probes = 0;
  let verdict = 'ok';
  const probe = async () => { probes += 1; return verdict; };
  const { clock, sockets, conn, seen, welcome } = setup({ handlers: { probe } });
  conn.start();
  welcome(sockets[0]);
  sockets[0].serverClose(1006, false);
  await settle();
  assert.equal(probes, 0, 'a storm\'s probes are spread as its sockets are');
  clock.advance(1625);
  await settle();
  assert.equal(probes, 1);
  assert.equal(sockets.length, 2, 'then the handshake');
  verdict = 'room_closed';
  sockets[1].serverClose(1006, false);
  clock.advance(750);
  await settle();
  assert.equal(probes, 2);
  assert.equal(sockets.length, 2, 'no handshake into a closed room');
  assert.deepEqual(seen.ends, ['room_closed']);
});

test('refusals with a retry hint do not spend the attempts', () => {
  const { clock, sockets, conn, welcome } = setup({ attempts: 2 });
  conn.start();
  welcome(sockets[0]);
  for (let i = 0; i < 6; i += 1) {
    sockets.at(-1).serverClose(CLOSE.TRY_AGAIN, true, 'too many handshakes on this replica; retry_after_ms=200');
    clock.advance(200);
  }
  assert.equal(sockets.length, 7, 'six refusals in a storm, and still trying');
  assert.notEqual(conn.state, 'failed');
  welcome(sockets[6]);
  assert.equal(conn.state, 'online');
});
