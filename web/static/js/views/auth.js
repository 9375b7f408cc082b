// /register and /login.

import { h, tr } from '../dom.js';
import { auth } from '../api.js';
import { setUser } from '../session.js';
import { flash } from '../notices.js';
import { navigate, safeNext } from '../router.js';
import {
  field, setError, clearError, formError, showFormError, hideFormError,
  focusFirstError, applyValidationErrors, value, setErrorText,
} from '../forms.js';
import { passwordScore, passwordProblem, SCORE_KEYS } from '../password.js';

// FastAPI's own length errors get our wording; any other refusal of a
// password is shown in the server's words (its rules are the truth).
const OWN_PASSWORD_TYPES = new Set(['string_too_short', 'string_too_long', 'common_password']);

function serverPasswordRefusal(detail) {
  if (!Array.isArray(detail)) return null;
  return detail.find((item) => item && Array.isArray(item.loc) && item.loc.at(-1) === 'password'
    && !OWN_PASSWORD_TYPES.has(item.type) && typeof item.msg === 'string') || null;
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;

function submitButton(key, testid) {
  const label = h('span', { i18n: key });
  const spinner = h('span', { class: 'spinner-border spinner-border-sm ms-2', 'aria-hidden': 'true', hidden: true });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary w-100', testid }, label, spinner);
  btn.setBusy = (busy) => {
    btn.disabled = busy;
    spinner.hidden = !busy;
    btn.setAttribute('aria-busy', busy ? 'true' : 'false');
  };
  return btn;
}

function page(titleKey, leadKey, ...body) {
  return h('div', { class: 'container py-4 py-md-5' },
    h('div', { class: 'row justify-content-center' },
      h('div', { class: 'col-12 col-sm-10 col-md-7 col-lg-5' },
        h('h1', { class: 'h2 mb-2', i18n: titleKey }),
        leadKey ? h('p', { class: 'text-body-secondary mb-4', i18n: leadKey }) : null,
        ...body)));
}

/** Show an ApiError that concerns no single field. */
function showApiError(box, err) {
  if (err.status === 0) showFormError(box, 'errors.network');
  else if (err.status === 429) {
    const seconds = err.retryAfter;
    if (seconds) showFormError(box, 'errors.tooManyWait', { count: seconds });
    else showFormError(box, 'errors.tooMany');
  } else if (err.status >= 500) showFormError(box, 'errors.server');
  else showFormError(box, 'errors.unexpected', { status: err.status });
}

function withNext(path, next) {
  return next && next !== '/lobby' ? `${path}?next=${encodeURIComponent(next)}` : path;
}

export function registerView(ctx) {
  const next = safeNext(ctx.query.get('next'));
  const email = field({
    id: 'register-email', name: 'email', type: 'email', label: 'register.email',
    autocomplete: 'email', required: true, testid: 'register-email',
    attrs: { maxlength: 254, inputmode: 'email', spellcheck: 'false', autocapitalize: 'none' },
  });
  const username = field({
    id: 'register-username', name: 'username', label: 'register.username',
    autocomplete: 'username', required: true, testid: 'register-username', help: 'register.usernameHelp',
    attrs: { minlength: 3, maxlength: 32, spellcheck: 'false', autocapitalize: 'none' },
  });

  const meterFill = h('span', { class: 'strength-fill' });
  const meterLabel = h('span', { class: 'strength-label small', testid: 'password-strength-label', 'aria-live': 'polite' });
  const meter = h('div', { class: 'strength mt-2', testid: 'password-strength', dataset: { score: '' }, hidden: true },
    h('div', { class: 'strength-bar', 'aria-hidden': 'true' }, meterFill), meterLabel);

  const password = field({
    id: 'register-password', name: 'password', type: 'password', label: 'register.password',
    autocomplete: 'new-password', required: true, testid: 'register-password', help: 'register.passwordHelp',
    attrs: { minlength: 8, maxlength: 128 }, after: meter,
  });
  const confirm = field({
    id: 'register-confirm', name: 'confirm', type: 'password', label: 'register.confirm',
    autocomplete: 'new-password', required: true, testid: 'register-confirm',
    attrs: { minlength: 8, maxlength: 128 },
  });
  const fields = [email, username, password, confirm];
  const errorBox = formError('register-form-error');
  const button = submitButton('register.submit', 'register-submit');

  const updateMeter = () => {
    const pw = password.input.value;
    if (!pw) {
      meter.hidden = true;
      return;
    }
    const score = passwordScore(pw, { email: email.input.value, username: username.input.value });
    meter.hidden = false;
    meter.dataset.score = String(score);
    tr(meterLabel, SCORE_KEYS[score]);
  };
  password.input.addEventListener('input', updateMeter);
  username.input.addEventListener('input', () => { if (password.input.value) updateMeter(); });
  confirm.input.addEventListener('input', () => clearError(confirm));

  const form = h('form', { novalidate: true, testid: 'register-form', class: 'card card-body shadow-sm' },
    errorBox, email.wrap, username.wrap, password.wrap, confirm.wrap, button);

  const validate = () => {
    fields.forEach(clearError);
    const e = value(email);
    const u = value(username);
    const p = password.input.value;
    if (!e) setError(email, 'register.error.emailRequired');
    else if (!EMAIL_RE.test(e)) setError(email, 'register.error.emailInvalid');
    if (!u) setError(username, 'register.error.usernameRequired');
    else if (!USERNAME_RE.test(u)) setError(username, 'register.error.usernameInvalid');
    const problem = passwordProblem(p, { email: e, username: u });
    if (problem) setError(password, problem);
    if (!confirm.input.value) setError(confirm, 'register.error.confirmRequired');
    else if (confirm.input.value !== p) setError(confirm, 'register.error.passwordMismatch');
    return !focusFirstError(fields);
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideFormError(errorBox);
    if (!validate()) return;
    button.setBusy(true);
    const e = value(email);
    const u = value(username);
    const p = password.input.value;
    try {
      await auth.register(e, u, p);
    } catch (err) {
      button.setBusy(false);
      if (err.status === 409) {
        const detail = String(typeof err.detail === 'string' ? err.detail : JSON.stringify(err.detail || '')).toLowerCase();
        if (detail.includes('email')) setError(email, 'register.error.emailTaken');
        else if (detail.includes('username') || detail.includes('user name')) setError(username, 'register.error.usernameTaken');
        else showFormError(errorBox, 'register.error.conflict');
      } else if (err.status === 422 && serverPasswordRefusal(err.detail)) {
        setErrorText(password, serverPasswordRefusal(err.detail).msg);
      } else if (err.status === 422) {
        const rest = applyValidationErrors(err.detail, { email, username, password }, {
          email: 'register.error.emailInvalid',
          username: 'register.error.usernameInvalid',
          password: 'register.error.passwordLength',
        }, { common_password: 'register.error.passwordCommon' });
        if (rest.length) showFormError(errorBox, 'errors.invalidInput');
      } else {
        showApiError(errorBox, err);
      }
      focusFirstError(fields);
      return;
    }
    // The account exists: sign in with it straight away.
    try {
      const res = await auth.login(e, p);
      setUser(res.user);
      flash('success', 'notice.accountCreated', { username: res.user.username });
      await navigate(next, { replace: true });
    } catch {
      flash('success', 'notice.accountCreatedLogin');
      await navigate(withNext('/login', next), { replace: true });
    }
  });

  const node = page('register.title', 'register.lead',
    form,
    h('p', { class: 'mt-3 text-center' },
      h('span', { i18n: 'register.haveAccount' }), ' ',
      h('a', { href: withNext('/login', next), testid: 'to-login', i18n: 'register.toLogin' })));
  return { node, title: 'register.title', focus: email.input };
}

export function loginView(ctx) {
  const next = safeNext(ctx.query.get('next'));
  const email = field({
    id: 'login-email', name: 'email', type: 'email', label: 'login.email',
    autocomplete: 'email', required: true, testid: 'login-email',
    attrs: { maxlength: 254, inputmode: 'email', spellcheck: 'false', autocapitalize: 'none' },
  });
  const password = field({
    id: 'login-password', name: 'password', type: 'password', label: 'login.password',
    autocomplete: 'current-password', required: true, testid: 'login-password',
    attrs: { maxlength: 128 },
  });
  const fields = [email, password];
  const errorBox = formError('login-form-error');
  const button = submitButton('login.submit', 'login-submit');
  const form = h('form', { novalidate: true, testid: 'login-form', class: 'card card-body shadow-sm' },
    errorBox, email.wrap, password.wrap, button);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideFormError(errorBox);
    fields.forEach(clearError);
    const e = value(email);
    const p = password.input.value;
    if (!e) setError(email, 'register.error.emailRequired');
    else if (!EMAIL_RE.test(e)) setError(email, 'register.error.emailInvalid');
    if (!p) setError(password, 'login.error.passwordRequired');
    if (focusFirstError(fields)) return;
    button.setBusy(true);
    try {
      const res = await auth.login(e, p);
      setUser(res.user);
      flash('success', 'notice.welcomeBack', { username: res.user.username });
      await navigate(next, { replace: true });
    } catch (err) {
      button.setBusy(false);
      if (err.status === 401) {
        showFormError(errorBox, 'login.error.invalid');
        password.input.value = '';
        password.input.focus();
      } else if (err.status === 422 && serverPasswordRefusal(err.detail)) {
        setErrorText(password, serverPasswordRefusal(err.detail).msg);
      } else if (err.status === 422) {
        const rest = applyValidationErrors(err.detail, { email, password }, {
          email: 'register.error.emailInvalid',
          password: 'login.error.passwordRequired',
        });
        if (rest.length) showFormError(errorBox, 'errors.invalidInput');
        focusFirstError(fields);
      } else {
        showApiError(errorBox, err);
      }
    }
  });

  const node = page('login.title', ctx.query.get('next') ? 'login.leadNext' : 'login.lead',
    form,
    h('p', { class: 'mt-3 text-center' },
      h('span', { i18n: 'login.noAccount' }), ' ',
      h('a', { href: withNext('/register', next), testid: 'to-register', i18n: 'login.toRegister' })));
  return { node, title: 'login.title', focus: email.input };
}
