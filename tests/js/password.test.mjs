import { test } from 'node:test';
import assert from 'node:assert/strict';
import { passwordProblem } from '../../web/static/js/password.js';

const who = { email: 'maria.lopez@example.com', username: 'mlopez' };

test('the client refuses what the server refuses', () => {
  assert.equal(passwordProblem('short', who), 'register.error.passwordLength');
  assert.equal(passwordProblem('x'.repeat(129), who), 'register.error.passwordLength');
  assert.equal(passwordProblem('aaaaaaaa', who), 'register.error.passwordRepeat');
  assert.equal(passwordProblem('mlopez', { ...who, username: 'mlopez' }), 'register.error.passwordLength');
  assert.equal(passwordProblem('MLopez2024!', who), 'register.error.passwordPersonal');
  assert.equal(passwordProblem('hi maria.lopez', who), 'register.error.passwordPersonal');
  assert.equal(passwordProblem('xxtagged-boxx', { email: 'tagged+box@x.io', username: 'bob' }), 'register.error.passwordPersonal');
  assert.equal(passwordProblem('jojojojo', { email: 'jojojojo@x.io', username: 'bob' }), 'register.error.passwordPersonal');
});

test('ordinary passwords pass', () => {
  assert.equal(passwordProblem('correct horse battery staple', who), null);
  assert.equal(passwordProblem('abababab', who), null);
  assert.equal(passwordProblem('a1b2c3d4e5', { email: 'a@x.io', username: 'bob' }), null);
});
