import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareIds, maxId, parseId } from '../../web/static/js/eventid.js';

test('ids compare as pairs of integers, not as strings', () => {
  assert.ok(compareIds('9-0', '10-0') < 0);
  assert.ok(compareIds('10-2', '10-10') < 0);
  assert.equal(compareIds('5-1', '5-1'), 0);
  assert.equal(maxId('9-5', '10-0'), '10-0');
  assert.equal(maxId(null, '1-0'), '1-0');
  assert.deepEqual(parseId('junk'), [0, 0]);
});
