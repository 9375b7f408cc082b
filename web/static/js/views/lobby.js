// /lobby: create a room, or join one by its code.

import { h } from '../dom.js';
import { rooms } from '../api.js';
import { setUser, session } from '../session.js';
import { flash } from '../notices.js';
import { navigate } from '../router.js';
import { isValidCode, normalizeCode } from '../room-codes.js';
import {
  field, setError, clearError, formError, showFormError, hideFormError,
} from '../forms.js';

function busyButton(key, testid, cls) {
  const btn = h('button', { type: 'submit', class: cls, testid },
    h('span', { i18n: key }),
    h('span', { class: 'spinner-border spinner-border-sm ms-2', 'aria-hidden': 'true', hidden: true }));
  btn.setBusy = (busy) => {
    btn.disabled = busy;
    btn.querySelector('.spinner-border').hidden = !busy;
  };
  return btn;
}

function sessionExpired() {
  setUser(null);
  flash('warning', 'notice.sessionExpired');
  return navigate(`/login?next=${encodeURIComponent('/lobby')}`, { replace: true });
}

function apiErrorKey(err) {
  if (err.status === 0) return ['errors.network'];
  if (err.status === 429) return err.retryAfter ? ['errors.tooManyWait', { count: err.retryAfter }] : ['errors.tooMany'];
  if (err.status >= 500) return ['errors.server'];
  return ['errors.unexpected', { status: err.status }];
}

export function lobbyView(ctx) {
  // Create
  const name = field({
    id: 'room-name', name: 'name', label: 'lobby.create.name', help: 'lobby.create.nameHelp',
    testid: 'room-name-input', attrs: { maxlength: 64, autocomplete: 'off' },
  });
  const createError = formError('create-room-error');
  const createBtn = busyButton('lobby.create.submit', 'create-room-button', 'btn btn-primary');
  const createForm = h('form', { novalidate: true, testid: 'create-room-form' }, createError, name.wrap, createBtn);
  createForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideFormError(createError);
    clearError(name);
    const roomName = name.input.value.trim();
    if ([...roomName].length > 64) {
      setError(name, 'lobby.create.nameTooLong');
      name.input.focus();
      return;
    }
    createBtn.setBusy(true);
    try {
      const room = await rooms.create(roomName || undefined);
      flash('success', 'notice.roomCreated', { code: room.code });
      await navigate(`/r/${encodeURIComponent(room.code)}`);
    } catch (err) {
      createBtn.setBusy(false);
      if (err.status === 401) return sessionExpired();
      if (err.status === 422) {
        setError(name, 'lobby.create.nameTooLong');
        name.input.focus();
      } else {
        const [key, params] = apiErrorKey(err);
        showFormError(createError, key, params);
      }
    }
    return undefined;
  });

  // Join
  const code = field({
    id: 'join-code', name: 'code', label: 'lobby.join.code', help: 'lobby.join.codeHelp', required: true,
    testid: 'join-code-input',
    attrs: {
      autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false', maxlength: 200,
      class: 'form-control code-input',
    },
  });
  const initial = ctx.query.get('code');
  if (initial) code.input.value = normalizeCode(initial);
  const joinError = formError('join-room-error');
  const joinBtn = busyButton('lobby.join.submit', 'join-room-button', 'btn btn-outline-primary');
  const joinForm = h('form', { novalidate: true, testid: 'join-room-form' }, joinError, code.wrap, joinBtn);
  joinForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    hideFormError(joinError);
    clearError(code);
    const c = normalizeCode(code.input.value);
    if (!c) {
      setError(code, 'lobby.join.required');
      code.input.focus();
      return;
    }
    if (!isValidCode(c)) {
      setError(code, 'lobby.join.invalid');
      code.input.focus();
      return;
    }
    joinBtn.setBusy(true);
    try {
      const room = await rooms.get(c);
      await navigate(`/r/${encodeURIComponent(room.code || c)}`);
    } catch (err) {
      joinBtn.setBusy(false);
      if (err.status === 401) return sessionExpired();
      if (err.status === 404) {
        setError(code, 'lobby.join.notFound', { code: c });
        code.input.focus();
      } else {
        const [key, params] = apiErrorKey(err);
        showFormError(joinError, key, params);
      }
    }
    return undefined;
  });

  const node = h('div', { class: 'container py-4 py-md-5', testid: 'lobby' },
    h('h1', { class: 'h2 mb-1', i18n: 'lobby.title' }),
    h('p', { class: 'text-body-secondary mb-4', i18n: ['lobby.lead', { username: session.user ? session.user.username : '' }] }),
    h('div', { class: 'row g-4' },
      h('div', { class: 'col-12 col-md-6' },
        h('section', { class: 'card h-100 shadow-sm', 'aria-labelledby': 'create-title' },
          h('div', { class: 'card-body' },
            h('h2', { id: 'create-title', class: 'h4', i18n: 'lobby.create.title' }),
            h('p', { class: 'text-body-secondary', i18n: 'lobby.create.text' }),
            createForm))),
      h('div', { class: 'col-12 col-md-6' },
        h('section', { class: 'card h-100 shadow-sm', 'aria-labelledby': 'join-title' },
          h('div', { class: 'card-body' },
            h('h2', { id: 'join-title', class: 'h4', i18n: 'lobby.join.title' }),
            h('p', { class: 'text-body-secondary', i18n: 'lobby.join.text' }),
            joinForm)))));
  return { node, title: 'lobby.title', focus: initial ? code.input : undefined };
}
