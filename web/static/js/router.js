// History-API router for the single page. The edge answers every path that
// is not a file with index.html, so /lobby or /r/CODE load this page and the
// router picks the view.

import { clearNotices, showFlashed } from './notices.js';

let routes = [];
let options = {};
let seq = 0;
let cleanup = null;
let firstRender = true;

/**
 * routes: [{ path: '/lobby' | /^\/r\/([^/]+)$/, view, members?: bool, guestOnly?: bool, name }]
 * options: { notFound, guard(route, ctx) -> redirect path|null, after(ctx) }
 */
export function defineRoutes(list, opts) {
  routes = list;
  options = opts || {};
}

/** Only same-origin paths are accepted as ?next= targets. */
export function safeNext(next, fallback = '/lobby') {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) {
    return fallback;
  }
  try {
    const url = new URL(next, location.origin);
    if (url.origin !== location.origin) return fallback;
    if (url.pathname === '/login' || url.pathname === '/register') return fallback;
    return url.pathname + url.search + url.hash;
  } catch {
    return fallback;
  }
}

export function currentPath() {
  return location.pathname + location.search;
}

export function navigate(to, { replace = false } = {}) {
  if (replace) history.replaceState({}, '', to);
  else history.pushState({}, '', to);
  return render({ push: !replace });
}

function match(pathname) {
  for (const r of routes) {
    if (typeof r.path === 'string') {
      if (r.path === pathname || r.path + '/' === pathname) return { route: r, params: [] };
    } else {
      const m = r.path.exec(pathname);
      // A malformed escape (/r/%E0) throws URIError: the caller shows the failure view.
      if (m) return { route: r, params: m.slice(1).map((p) => decodeURIComponent(p)) };
    }
  }
  return { route: { view: options.notFound, name: 'notfound' }, params: [] };
}

async function render({ push = false } = {}) {
  const mySeq = ++seq;
  if (cleanup) {
    const fn = cleanup;
    cleanup = null;
    try { fn(); } catch (err) { console.error(err); }
  }
  let route;
  let params = [];
  let failure = null;
  try {
    ({ route, params } = match(location.pathname));
  } catch (err) {
    failure = err;
    route = { name: 'failed' };
  }
  const ctx = {
    route,
    params,
    query: new URLSearchParams(location.search),
    path: currentPath(),
  };
  if (options.guard && !failure) {
    const redirect = options.guard(route, ctx);
    if (redirect) return navigate(redirect, { replace: true });
  }
  let result;
  try {
    if (failure) throw failure;
    result = await route.view(ctx);
  } catch (err) {
    console.error(err);
    result = options.failed ? options.failed(err, ctx) : { node: document.createTextNode(String(err)) };
  }
  if (mySeq !== seq) {
    // A newer navigation started while this view was loading.
    if (result && result.cleanup) result.cleanup();
    return;
  }
  const view = document.getElementById('view');
  clearNotices();
  view.replaceChildren(result.node);
  view.dataset.route = route.name || '';
  document.body.dataset.route = route.name || '';
  cleanup = result.cleanup || null;
  if (options.after) options.after(ctx, result);
  showFlashed();
  if (push) window.scrollTo(0, 0);
  if (!firstRender || result.focusOnLoad) {
    const target = result.focus || view.querySelector('h1');
    if (target) {
      if (!target.hasAttribute('tabindex') && !/^(INPUT|TEXTAREA|SELECT|BUTTON|A)$/.test(target.tagName)) {
        target.setAttribute('tabindex', '-1');
      }
      target.focus({ preventScroll: !push });
    }
  }
  firstRender = false;
  if (result.ready) result.ready();
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || a.dataset.external !== undefined) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (url.pathname.startsWith('/static/') || url.pathname.startsWith('/api/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}

export function startRouter() {
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', () => render({ push: false }));
  return render({ push: false });
}
