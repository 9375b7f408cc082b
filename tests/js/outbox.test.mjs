import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Outbox } from '../../web/static/js/outbox.js';

test('queued messages are sent once connected, and again with the same ref after a drop', () => {
  const box = new Outbox();
  box.add('r1', 'hello');
  box.add('r2', 'again');
  assert.deepEqual(box.flush(() => false), []);
  assert.equal(box.get('r1').state, 'queued');
  const wire = [];
  box.flush((item) => { wire.push(item.ref); return true; });
  assert.deepEqual(wire, ['r1', 'r2']);
  assert.deepEqual(box.flush((item) => { wire.push(item.ref); return true; }), [], 'sent ones wait for their ack');
  box.ack('r1');
  assert.deepEqual(box.requeue().map((i) => i.ref), ['r2']);
  box.flush((item) => { wire.push(item.ref); return true; });
  assert.deepEqual(wire, ['r1', 'r2', 'r2'], 'the resend carries the original ref');
});

test('an ack confirms its entry once; an unknown ack is ignored', () => {
  const box = new Outbox();
  box.add('r1', 'x');
  assert.equal(box.ack('r1').ref, 'r1');
  assert.equal(box.ack('r1'), null);
  assert.equal(box.size, 0);
});

test('our own message coming back first takes the oldest entry with that text', () => {
  const box = new Outbox();
  box.add('r1', 'same');
  box.add('r2', 'same');
  box.flush(() => true);
  assert.equal(box.echo('same').ref, 'r1');
  assert.equal(box.ack('r1'), null, 'the late ack finds nothing');
  assert.equal(box.echo('other'), null);
  assert.equal(box.size, 1);
});

test('failed entries are not resent until retried', () => {
  const box = new Outbox();
  box.add('r1', 'x');
  box.fail('r1');
  assert.deepEqual(box.flush(() => true), []);
  assert.equal(box.echo('x'), null);
  box.retry('r1');
  assert.equal(box.flush(() => true).length, 1);
});
