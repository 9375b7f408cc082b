import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, backoffDelay } from '../../web/static/js/backoff.js';

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
