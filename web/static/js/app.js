// Entry point: loads the language catalogue, asks who is signed in, wires
// the shared layout (navbar, language switcher, log out) and starts the router.

import { initI18n, useLanguage, language, t, formatTime, formatDateTime } from './i18n.js';
import { applyI18n } from './dom.js';
import { auth } from './api.js';
import { session, setUser, loadUser } from './session.js';
import { flash, notify } from './notices.js';
import { defineRoutes, startRouter, navigate, safeNext } from './router.js';
import {
  welcomeView, aboutView, howView, privacyView, profileView, notFoundView, failedView,
} from './views/pages.js';
import { registerView, loginView } from './views/auth.js';
import { lobbyView } from './views/lobby.js';
import { roomView } from './views/room.js';

const ROUTES = [
  { path: '/', view: welcomeView, name: 'welcome' },
  { path: '/about', view: aboutView, name: 'about' },
  { path: '/how-rooms-work', view: howView, name: 'how' },
  { path: '/privacy', view: privacyView, name: 'privacy' },
  { path: '/register', view: registerView, name: 'register', guestOnly: true },
  { path: '/login', view: loginView, name: 'login', guestOnly: true },
  { path: '/lobby', view: lobbyView, name: 'lobby', members: 'notice.loginForLobby', nav: 'lobby' },
  { path: '/profile', view: profileView, name: 'profile', members: 'notice.loginForProfile', nav: 'profile' },
  { path: /^\/r\/([^/]+)\/?$/, view: roomView, name: 'room', members: 'notice.loginForRoom', nav: 'lobby' },
];

const NAV_LINKS = {
  welcome: 'nav-home', lobby: 'nav-lobby', profile: 'nav-profile', how: 'nav-how', about: 'nav-about', privacy: 'nav-privacy',
};

let pageTitle = { key: 'welcome.docTitle', params: undefined };

function $(testid) {
  return document.querySelector(`[data-testid="${testid}"]`);
}

function setTitle() {
  // A view may name its tab itself (a room by its name), in the current language.
  const text = pageTitle.text ? pageTitle.text() : t(pageTitle.key, pageTitle.params);
  document.title = pageTitle.key === 'welcome.docTitle' ? text : `${text} · Sala`;
}

function updateNav(routeName) {
  const user = session.user;
  $('nav-anon').hidden = Boolean(user);
  $('nav-user').hidden = !user;
  $('nav-username').textContent = user ? user.username : '';
  $('nav-username').title = user ? user.username : '';
  for (const a of document.querySelectorAll('[data-members-only]')) {
    a.classList.toggle('locked', !user);
    a.dataset.locked = user ? 'false' : 'true';
    a.querySelector('.locked-label').hidden = Boolean(user);
  }
  if (routeName !== undefined) {
    const route = ROUTES.find((r) => r.name === routeName);
    const active = NAV_LINKS[(route && route.nav) || routeName];
    for (const id of Object.values(NAV_LINKS)) {
      const el = $(id);
      if (!el) continue;
      if (id === active) el.setAttribute('aria-current', 'page');
      else el.removeAttribute('aria-current');
      el.classList.toggle('active', id === active && id !== 'nav-home');
    }
  }
}

function collapseNav() {
  const menu = document.getElementById('nav-main');
  if (menu && menu.classList.contains('show') && window.bootstrap) {
    window.bootstrap.Collapse.getOrCreateInstance(menu, { toggle: false }).hide();
  }
}

async function logout(button) {
  session.loggingOut = true;
  button.disabled = true;
  // Logging out of a room is an explicit leave: the others see it at once.
  if (hooks.room) await hooks.room.leave();
  // The server answers a logout with Clear-Site-Data, which also empties
  // local storage: keep the language the person chose.
  let chosenLanguage = null;
  try { chosenLanguage = localStorage.getItem('sala.lang'); } catch { /* ignore */ }
  try {
    await auth.logout();
  } catch (err) {
    if (err.status !== 401) {
      button.disabled = false;
      session.loggingOut = false;
      notify('danger', err.status === 0 ? 'errors.network' : 'errors.logoutFailed');
      return;
    }
  }
  if (chosenLanguage) {
    try { localStorage.setItem('sala.lang', chosenLanguage); } catch { /* ignore */ }
  }
  setUser(null);
  flash('success', 'notice.loggedOut');
  try {
    await navigate('/');
  } finally {
    button.disabled = false;
    session.loggingOut = false;
  }
}

function relocalizeTimes() {
  for (const el of document.querySelectorAll('time.msg-time[datetime]')) {
    const d = new Date(el.getAttribute('datetime'));
    el.textContent = formatTime(d);
    el.title = formatDateTime(d);
  }
}

// Test and debugging hooks (they only act on this tab's own connection).
const hooks = {
  room: null,
  debugDropSocket(opts) {
    if (!this.room) throw new Error('not in a room');
    this.room.dropSocket(opts);
  },
  debugResume() {
    if (this.room) this.room.resume();
  },
  roomInfo() {
    return this.room ? this.room.info() : null;
  },
};

async function boot() {
  window.__sala = hooks;
  try {
    await initI18n();
  } catch (err) {
    console.error('language catalogue failed to load', err);
  }
  applyI18n(document);
  // Text is hidden until now (app.css), so nobody sees English first.
  document.documentElement.classList.add('i18n-ready');
  const select = $('language-select');
  select.value = language();
  select.addEventListener('change', async () => {
    await useLanguage(select.value);
    applyI18n(document);
    relocalizeTimes();
    setTitle();
  });

  $('logout-button').addEventListener('click', (event) => logout(event.currentTarget));
  window.addEventListener('sala:session', () => updateNav());
  window.addEventListener('sala:title', setTitle);

  let serverDown = false;
  try {
    await loadUser();
  } catch (err) {
    serverDown = true;
    console.error('GET /api/auth/me failed', err);
  }
  updateNav();

  defineRoutes(ROUTES, {
    notFound: notFoundView,
    failed: failedView,
    guard(route, ctx) {
      if (route.members && !session.user) {
        flash('info', route.members, { code: (ctx.params[0] || '').toUpperCase() });
        return `/login?next=${encodeURIComponent(ctx.path)}`;
      }
      if (route.guestOnly && session.user) return safeNext(ctx.query.get('next'));
      return null;
    },
    after(ctx, result) {
      pageTitle = { key: result.title || 'welcome.docTitle', params: result.titleParams, text: result.titleText };
      setTitle();
      updateNav(ctx.route.name);
      hooks.room = result.hooks || null;
      collapseNav();
    },
  });
  if (serverDown) flash('danger', 'errors.serverUnreachable');
  await startRouter();
  document.body.dataset.ready = 'true';
}

boot();
