import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPresence, groupsWith, insertIndex } from '../../web/static/js/timeline.js';

test('events go in id order, above the pending tail', () => {
  const items = [{ id: '1-0' }, { id: '3-0' }, { id: null }, { id: '10-0' }, { pending: true }, { pending: true }];
  assert.equal(insertIndex(items, '11-0'), 4);
  assert.equal(insertIndex(items, '9-0'), 3, 'numeric order: 9 before 10');
  assert.equal(insertIndex(items, '2-0'), 3, 'a system line without id stops the walk');
  assert.equal(insertIndex(items, null), 4);
  assert.equal(insertIndex([], '1-0'), 0);
  assert.equal(insertIndex([{ id: '5-0' }, { id: '6-0' }], '1-0'), 0);
});

test('only the tail of a long list is read', () => {
  const read = [];
  const items = { length: 10_000, at: (i) => { read.push(i); return { id: `${i}-0` }; } };
  assert.equal(insertIndex(items, '20000-0'), 10_000);
  assert.deepEqual(read, [9999, 9999]);
});

test('messages group by sender within five minutes unless one failed', () => {
  const a = { kind: 'message', sender: 'ana', ts: 0, status: 'sent' };
  assert.ok(groupsWith(a, { ...a, ts: 60_000 }));
  assert.ok(!groupsWith(a, { ...a, ts: 6 * 60_000 }));
  assert.ok(!groupsWith(a, { ...a, sender: 'bo' }));
  assert.ok(!groupsWith(a, { ...a, status: 'failed' }));
  assert.ok(!groupsWith({ kind: 'event' }, a));
  assert.ok(!groupsWith(null, a));
});

test('joins and leaves change the member set', () => {
  let m = new Set(['ana']);
  m = applyPresence(m, { type: 'join', username: 'bo' });
  assert.deepEqual([...m].sort(), ['ana', 'bo']);
  m = applyPresence(m, { type: 'leave', username: 'ana' });
  assert.deepEqual([...m], ['bo']);
});
