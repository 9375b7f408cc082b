import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSegments, safeHref } from '../../web/static/js/links.js';

test('http and https become links, trailing punctuation stays text', () => {
  assert.deepEqual(linkSegments('see https://example.com/a?b=1. ok'), [
    { text: 'see ' },
    { text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
    { text: '. ok' },
  ]);
  assert.deepEqual(linkSegments('(http://x.org)'), [
    { text: '(' }, { text: 'http://x.org', href: 'http://x.org/' }, { text: ')' },
  ]);
});

test('other schemes and markup never become links', () => {
  for (const s of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'ftp://x.org', '<a href="http://x">', 'plain']) {
    assert.ok(linkSegments(s).every((seg) => !seg.href || /^https?:/.test(seg.href)), s);
  }
  assert.deepEqual(linkSegments('javascript:alert(1)'), [{ text: 'javascript:alert(1)' }]);
  assert.equal(safeHref('javascript:alert(1)'), null);
  assert.equal(safeHref('http://'), null);
  assert.deepEqual(linkSegments(''), [{ text: '' }]);
});

test('the segments cover the text exactly', () => {
  const s = 'a https://x.y/z b http://q.r c';
  assert.equal(linkSegments(s).map((p) => p.text).join(''), s);
});
