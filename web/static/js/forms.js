// Form fields with labels, hints and errors tied together for assistive
// technology, and mapping of server errors onto the fields they concern.

import { h, tr } from './dom.js';

/**
 * Build a labelled Bootstrap field.
 * Returns { wrap, input, error, help, name }.
 */
export function field({
  id, name, type = 'text', label, help, testid, autocomplete, required = false,
  attrs = {}, control = 'input', after = null,
}) {
  const input = h(control, {
    id,
    name,
    class: control === 'select' ? 'form-select' : 'form-control',
    type: control === 'input' ? type : undefined,
    autocomplete,
    required,
    testid,
    ...attrs,
  });
  const labelEl = h('label', { class: 'form-label', for: id, i18n: label });
  if (!required) {
    labelEl.append(' ');
    labelEl.append(h('span', { class: 'text-body-secondary small', i18n: 'common.optional' }));
  }
  const describedBy = [];
  let helpEl = null;
  if (help) {
    helpEl = h('div', { id: `${id}-help`, class: 'form-text', i18n: help, testid: testid ? `${testid}-help` : undefined });
    describedBy.push(helpEl.id);
  }
  const error = h('div', {
    id: `${id}-error`,
    class: 'invalid-feedback',
    testid: testid ? `${testid}-error` : undefined,
  });
  describedBy.push(error.id);
  input.setAttribute('aria-describedby', describedBy.join(' '));
  const wrap = h('div', { class: 'mb-3' }, labelEl, input, after, helpEl, error);
  const f = { wrap, input, error, help: helpEl, name };
  input.addEventListener('input', () => clearError(f));
  return f;
}

export function setError(f, key, params) {
  f.input.classList.add('is-invalid');
  f.input.setAttribute('aria-invalid', 'true');
  tr(f.error, key, params);
  f.error.classList.add('d-block');
}

/** Show the server's own words (a detail with no catalogue key of ours). */
export function setErrorText(f, text) {
  f.input.classList.add('is-invalid');
  f.input.setAttribute('aria-invalid', 'true');
  delete f.error.dataset.i18n;
  delete f.error.dataset.i18nParams;
  f.error.textContent = text;
  f.error.classList.add('d-block');
}

export function clearError(f) {
  f.input.classList.remove('is-invalid');
  f.input.removeAttribute('aria-invalid');
  f.error.textContent = '';
  delete f.error.dataset.i18n;
  delete f.error.dataset.i18nParams;
  f.error.classList.remove('d-block');
}

/** A form-level error box (for errors that belong to no single field). */
export function formError(testid) {
  return h('div', { class: 'alert alert-danger d-none', role: 'alert', testid });
}

export function showFormError(box, key, params) {
  tr(box, key, params);
  box.classList.remove('d-none');
}

export function hideFormError(box) {
  box.textContent = '';
  box.classList.add('d-none');
}

/** Focus the first field that has an error. */
export function focusFirstError(fields) {
  const bad = fields.find((f) => f.input.classList.contains('is-invalid'));
  if (bad) bad.input.focus();
  return Boolean(bad);
}

/**
 * Put FastAPI 422 validation errors on their fields.
 * detail: [{loc: ['body', 'email'], msg, type}, ...]
 * messages: { fieldName: catalogueKey } — our own wording per field;
 * byType: { errorType: catalogueKey } — wording for a specific error type.
 * Returns the entries that matched no field.
 */
export function applyValidationErrors(detail, fieldsByName, messages, byType = {}) {
  const unmatched = [];
  if (!Array.isArray(detail)) return [detail];
  for (const item of detail) {
    const loc = Array.isArray(item && item.loc) ? item.loc : [];
    const name = [...loc].reverse().find((part) => typeof part === 'string' && fieldsByName[part]);
    if (name) {
      const key = (item && byType[item.type]) || messages[name] || 'errors.invalidValue';
      setError(fieldsByName[name], key);
    } else {
      unmatched.push(item);
    }
  }
  return unmatched;
}

/** Trim the values of text inputs (never passwords). */
export function value(f) {
  return f.input.type === 'password' ? f.input.value : f.input.value.trim();
}
