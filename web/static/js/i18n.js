// Message catalogues (web/static/i18n/<lang>.json) and translation.
// Keys are flat ("lobby.create.title"); a value is a string with {name}
// placeholders, or an object of plural forms ({"one": ..., "other": ...})
// chosen with Intl.PluralRules from params.count.

export const SUPPORTED = ['en', 'es'];
const STORAGE_KEY = 'sala.lang';

let current = 'en';
let catalog = {};
let fallback = {};
const cache = new Map();

export function language() {
  return current;
}

/** Language from localStorage, else the browser's preferences, else English. */
export function detectLanguage() {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (SUPPORTED.includes(stored)) return stored;
  } catch { /* storage may be blocked */ }
  const prefs = (navigator.languages && navigator.languages.length)
    ? navigator.languages : [navigator.language || 'en'];
  for (const pref of prefs) {
    const base = String(pref).toLowerCase().split('-')[0];
    if (SUPPORTED.includes(base)) return base;
  }
  return 'en';
}

async function load(lang) {
  if (cache.has(lang)) return cache.get(lang);
  const res = await fetch(`/static/i18n/${lang}.json`, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`catalogue ${lang}: HTTP ${res.status}`);
  const data = await res.json();
  cache.set(lang, data);
  return data;
}

export async function initI18n() {
  fallback = await load('en');
  await useLanguage(detectLanguage(), { remember: false });
}

/** Switch language; returns true when it changed. */
export async function useLanguage(lang, { remember = true } = {}) {
  if (!SUPPORTED.includes(lang)) lang = 'en';
  try {
    catalog = await load(lang);
  } catch {
    catalog = fallback;
    lang = 'en';
  }
  const changed = lang !== current;
  current = lang;
  document.documentElement.lang = lang;
  if (remember) {
    try { localStorage.setItem(STORAGE_KEY, lang); } catch { /* ignore */ }
  }
  return changed;
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(catalog, key)
    || Object.prototype.hasOwnProperty.call(fallback, key);
}

export function t(key, params = {}) {
  let value = Object.prototype.hasOwnProperty.call(catalog, key) ? catalog[key] : fallback[key];
  if (value === undefined) return key;
  if (value && typeof value === 'object') {
    const n = Number(params && params.count) || 0;
    const form = (n === 0 && 'zero' in value) ? 'zero' : new Intl.PluralRules(current).select(n);
    value = value[form] ?? value.other ?? '';
  }
  return String(value).replace(/\{(\w+)\}/g, (m, name) =>
    (params && Object.prototype.hasOwnProperty.call(params, name)) ? String(params[name]) : m);
}

/** Locale-aware formatting of a time (and the date when not today). */
export function formatTime(date) {
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  const opts = sameDay
    ? { hour: 'numeric', minute: '2-digit' }
    : { day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit' };
  return new Intl.DateTimeFormat(current, opts).format(date);
}

export function formatDateTime(date) {
  return new Intl.DateTimeFormat(current, { dateStyle: 'full', timeStyle: 'medium' }).format(date);
}
