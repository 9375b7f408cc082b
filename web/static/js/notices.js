// Flash-style notices shown in the layout's notices area.
// notify() shows one now; flash() keeps one for the next view, so a notice
// survives the navigation that follows an action (login, logout, ...).

import { h, tr, trAttr } from './dom.js';

const KINDS = new Set(['success', 'info', 'warning', 'danger']);
const MAX_SHOWN = 4;
/** Good news and information go away by themselves; warnings and errors stay until dismissed. */
export const NOTICE_DISMISS_MS = 8000;
const SELF_DISMISSING = new Set(['success', 'info']);
const STORE_KEY = 'sala.flash';
let queue = [];

function area() {
  return document.getElementById('notices');
}

/**
 * Show a notice now. key is a catalogue key; params fill its placeholders.
 * Returns the element.
 */
export function notify(kind, key, params, { id } = {}) {
  if (!KINDS.has(kind)) kind = 'info';
  const box = area();
  if (!box) return null;
  if (id) {
    const old = box.querySelector(`[data-notice-id="${CSS.escape(id)}"]`);
    if (old) old.remove();
  }
  const close = h('button', {
    type: 'button',
    class: 'btn-close',
    testid: 'notice-dismiss',
  });
  trAttr(close, 'aria-label', 'common.dismiss');
  const text = h('span', { class: 'notice-text flex-grow-1' });
  tr(text, key, params);
  const el = h('div', {
    class: `alert alert-${kind} d-flex align-items-start gap-2 notice`,
    role: kind === 'danger' ? 'alert' : 'status',
    testid: 'notice',
    dataset: { kind, key, ...(id ? { noticeId: id } : {}) },
  }, text, close);
  close.addEventListener('click', () => {
    el.remove();
    const main = document.getElementById('main');
    if (main) main.focus({ preventScroll: true });
  });
  box.append(el);
  if (SELF_DISMISSING.has(kind)) setTimeout(() => el.remove(), NOTICE_DISMISS_MS);
  while (box.children.length > MAX_SHOWN) box.firstElementChild.remove();
  return el;
}

/** Keep a notice for the next view (also across a full page load). */
export function flash(kind, key, params) {
  queue.push({ kind, key, params });
  try { sessionStorage.setItem(STORE_KEY, JSON.stringify(queue)); } catch { /* ignore */ }
}

export function clearNotices() {
  const box = area();
  if (box) box.replaceChildren();
}

/** Show the flashed notices; called after each view renders. */
export function showFlashed() {
  let items = queue;
  if (!items.length) {
    try { items = JSON.parse(sessionStorage.getItem(STORE_KEY) || '[]'); } catch { items = []; }
  }
  queue = [];
  try { sessionStorage.removeItem(STORE_KEY); } catch { /* ignore */ }
  for (const n of items) notify(n.kind, n.key, n.params);
}
