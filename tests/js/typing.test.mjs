import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TypingBoard, TypingSender } from '../../web/static/js/typing.js';

test('typing is announced at most once per interval', () => {
  let now = 0;
  const s = new TypingSender({ every: 3000, now: () => now });
  assert.ok(s.shouldSend());
  now = 2999;
  assert.ok(!s.shouldSend());
  now = 3000;
  assert.ok(s.shouldSend());
  s.reset();
  assert.ok(s.shouldSend());
});

test('a typist shows until the indicator expires or they stop', () => {
  let now = 0;
  const b = new TypingBoard({ ttl: 5000, now: () => now });
  assert.equal(b.nextExpiry(), null);
  b.typing('zoe');
  now = 1000;
  b.typing('ana');
  assert.deepEqual(b.active(), ['ana', 'zoe']);
  assert.equal(b.nextExpiry(), 4000);
  now = 5000;
  assert.deepEqual(b.active(), ['ana']);
  assert.ok(b.stopped('ana'));
  assert.deepEqual(b.active(), []);
});
