import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CODE_ALPHABET, isValidCode, normalizeCode, safeDecode } from '../../web/static/js/room-codes.js';

test('the alphabet is the server one', () => {
  const py = readFileSync(new URL('../../services/common/room_codes.py', import.meta.url), 'utf8');
  assert.equal(/ALPHABET = "([A-Z0-9]+)"/.exec(py)[1], CODE_ALPHABET);
});

test('codes of 4 to 16 characters of the alphabet are valid, nothing else', () => {
  assert.ok(isValidCode('ACDE'));
  assert.ok(isValidCode('A'.repeat(16)));
  assert.ok(!isValidCode('ACD'), 'three characters');
  assert.ok(!isValidCode('A'.repeat(17)));
  assert.ok(!isValidCode('ABCD'), 'B is a look-alike the server never issues');
  assert.ok(!isValidCode('A0CD'));
  assert.ok(!isValidCode('!!'));
});

test('normalizing accepts share links and separators, and never throws', () => {
  assert.equal(normalizeCode(' acd-efg '), 'ACDEFG');
  assert.equal(normalizeCode('http://x/r/acdefg?x=1'), 'ACDEFG');
  assert.equal(normalizeCode('http://x/r/%E0'), '%E0');
  assert.equal(safeDecode('%E0'), null);
  assert.equal(normalizeCode(undefined), '');
});
