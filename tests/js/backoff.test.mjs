import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKOFF, Backoff, MAX_HINT_MS, backoffDelay, dropDelay, retryHint } from '../../web/static/js/backoff.js';

test('delays grow, are jittered within [d/2, d] and bounded', () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 250);
  assert.equal(backoffDelay(0, { random: () => 1 }), 500);
  assert.equal(backoffDelay(2, { random: () => 1 }), 2000);
  assert.equal(backoffDelay(30, { random: () => 1 }), 10000);
  assert.equal(backoffDelay(30, { random: () => 0 }), 5000);
});

test('the backoff gives up after its attempts and starts over on reset', () => {
  const b = new Backoff({ attempts: 3, random: () => 0.5 });
  const delays = [b.next(), b.next(), b.next()];
  assert.ok(delays.every((d) => typeof d === 'number'));
  assert.ok(delays[0] < delays[1] && delays[1] < delays[2]);
  assert.equal(b.next(), null);
  assert.ok(b.exhausted);
  b.reset();
  assert.equal(b.next(), delays[0]);
});

test('the first reconnect after an unclean close is spread over [base/2, dropSpread]', () => {
  assert.equal(dropDelay({ random: () => 0 }), 250);
  assert.equal(dropDelay({ random: () => 1 }), BACKOFF.dropSpread);
  const b = new Backoff({ random: () => 1 });
  assert.equal(b.next({ dropped: true }), BACKOFF.dropSpread);
  assert.equal(b.next({ dropped: true }), 1000, 'only the first attempt is spread wider');
});

test('a retry hint is read from a close reason and is the delay, counted apart from the attempts', () => {
  assert.equal(retryHint('too many handshakes on this replica; retry_after_ms=850'), 850);
  assert.equal(retryHint('connecting too often; retry_after_ms=1000'), 1000);
  assert.equal(retryHint('this replica lost Redis; reconnect'), null);
  assert.equal(retryHint(undefined), null);
  assert.equal(retryHint('retry_after_ms=99999999'), MAX_HINT_MS);
  const b = new Backoff({ attempts: 2, hinted: 4, random: () => 0 });
  assert.equal(b.next({ hint: 4000 }), 4000, 'longer than the backoff: waited out');
  assert.equal(b.next({ hint: 10 }), 10, 'shorter: the server has a slot for it sooner');
  assert.equal(b.next({ hint: null }), 250, 'no hint: the backoff, at its first step');
  assert.equal(b.next({ hint: 10 }), 10, 'the refusals with a hint used none of the attempts');
  assert.equal(b.next({ hint: null }), 500);
  assert.equal(b.next({ hint: null }), null, 'the attempts are spent');
});

test('a server that keeps refusing with hints is given up on after `hinted` of them', () => {
  const b = new Backoff({ attempts: 8, hinted: 3 });
  assert.deepEqual([b.next({ hint: 5 }), b.next({ hint: 5 }), b.next({ hint: 5 })], [5, 5, 5]);
  assert.equal(b.next({ hint: 5 }), null);
  assert.ok(b.exhausted);
  b.reset();
  assert.equal(b.next({ hint: 5 }), 5, 'a welcome starts the count again');
});
