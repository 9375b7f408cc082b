// Tiny DOM helpers. Every piece of text goes through textContent or
// createTextNode: user-supplied strings are never parsed as HTML.

import { t } from './i18n.js';

/**
 * Create an element.
 *   h('button', { class: 'btn', type: 'button', onclick: fn, testid: 'x' }, 'text', child)
 * Special props: class, text, testid, i18n (key or [key, params]),
 * i18nAttrs ({attr: key}), dataset, on<event> (listener functions).
 * Strings among the children become text nodes.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'testid') el.dataset.testid = v;
      else if (k === 'i18n') {
        const [key, params] = Array.isArray(v) ? v : [v, undefined];
        tr(el, key, params);
      } else if (k === 'i18nAttrs') {
        for (const [attr, key] of Object.entries(v)) trAttr(el, attr, key);
      } else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'style') throw new Error('inline styles are not allowed (CSP)');
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Translate an element's text now and whenever the language changes. */
export function tr(el, key, params) {
  el.dataset.i18n = key;
  if (params && Object.keys(params).length) el.dataset.i18nParams = JSON.stringify(params);
  else delete el.dataset.i18nParams;
  el.textContent = t(key, params);
  return el;
}

/** Translate one attribute (placeholder, aria-label, title) of an element. */
export function trAttr(el, attr, key, params) {
  const map = parseAttrMap(el.dataset.i18nAttrs);
  map[attr] = key;
  el.dataset.i18nAttrs = Object.entries(map).map(([a, k]) => `${a}:${k}`).join(';');
  if (params) el.dataset.i18nAttrParams = JSON.stringify(params);
  el.setAttribute(attr, t(key, params));
  return el;
}

export function parseAttrMap(s) {
  const map = {};
  if (!s) return map;
  for (const part of s.split(';')) {
    const i = part.indexOf(':');
    if (i > 0) map[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return map;
}

/** Re-translate every marked element below root (after a language switch). */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    let params;
    try { params = el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : undefined; } catch { params = undefined; }
    el.textContent = t(el.dataset.i18n, params);
  }
  for (const el of root.querySelectorAll('[data-i18n-attrs]')) {
    let params;
    try { params = el.dataset.i18nAttrParams ? JSON.parse(el.dataset.i18nAttrParams) : undefined; } catch { params = undefined; }
    for (const [attr, key] of Object.entries(parseAttrMap(el.dataset.i18nAttrs))) {
      el.setAttribute(attr, t(key, params));
    }
  }
}

/** A random id usable as a message ref; works outside secure contexts too. */
export function randomId(prefix = '') {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Copy text to the clipboard; falls back to a hidden textarea. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* fall through to the fallback */ }
  const ta = h('textarea', { class: 'clipboard-helper', readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}
