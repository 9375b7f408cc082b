// /r/CODE: the room. Code and share link, live member list, messages,
// composer, connection indicator. The socket lives in RoomConnection; the
// rules (ordering, outbox, grouping, typing, links) live in pure modules.

import { h, tr, trAttr, copyText, randomId } from '../dom.js';
import { t, formatTime, formatDateTime } from '../i18n.js';
import { auth, rooms } from '../api.js';
import { session, setUser } from '../session.js';
import { flash, notify } from '../notices.js';
import { navigate } from '../router.js';
import { RoomConnection } from '../room-client.js';
import { isValidCode, normalizeCode } from '../room-codes.js';
import { Outbox } from '../outbox.js';
import { applyPresence, groupsWith, insertIndex } from '../timeline.js';
import { TypingBoard, TypingSender } from '../typing.js';
import { linkSegments } from '../links.js';

export const MAX_LENGTH = 2000;
const COUNTER_FROM = 200;       // show the counter when this many characters are left
const NEAR_BOTTOM_PX = 48;
const AVATAR_COLOURS = 8;

function nameOf(x) {
  if (x == null) return '';
  if (typeof x === 'string') return x;
  return String(x.username ?? x.name ?? '');
}

function hashName(s) {
  let n = 0;
  for (const ch of s) n = (n * 31 + ch.codePointAt(0)) >>> 0;
  return n % AVATAR_COLOURS;
}

function initial(name) {
  const first = [...name][0] || '?';
  return first.toUpperCase();
}

function tsMillis(ts) {
  const ms = Date.parse(ts);
  return Number.isFinite(ms) ? ms : Date.now();
}

function closedPanel(code, titleKey, key) {
  return h('div', { class: 'container py-5', testid: 'room-closed' },
    h('h1', { class: 'h2', i18n: [titleKey, { code }] }),
    h('p', { i18n: [key, { code }] }),
    h('a', { class: 'btn btn-primary', href: '/lobby', testid: 'back-to-lobby', i18n: 'room.backToLobby' }));
}

/** Message text with http(s) links as anchors, built from DOM nodes only. */
function messageText(text) {
  const el = h('div', { class: 'msg-text', testid: 'message-text' });
  for (const seg of linkSegments(text)) {
    if (seg.href) {
      el.append(h('a', {
        href: seg.href, target: '_blank', rel: 'noopener noreferrer', testid: 'message-link', text: seg.text,
      }));
    } else {
      el.append(document.createTextNode(seg.text));
    }
  }
  return el;
}

/** Describe a list item for the pure ordering and grouping rules. */
function describe(li) {
  return {
    id: li.dataset.sortId || null,
    pending: li.dataset.pending === 'true',
    kind: li.classList.contains('msg') ? 'message' : 'event',
    sender: li.dataset.sender,
    ts: li.dataset.ts,
    status: li.dataset.status,
  };
}

export function roomView(ctx) {
  const code = normalizeCode(ctx.params[0]);
  if (!isValidCode(code)) {
    return { node: closedPanel(code || '—', 'room.invalidTitle', 'room.invalidCode'), title: 'room.invalidTitle', titleParams: { code } };
  }
  const roomPath = `/r/${encodeURIComponent(code)}`;
  const shareUrl = `${location.origin}${roomPath}`;

  let you = session.user ? session.user.username : '';
  let unread = 0;       // below the reader's scroll position
  let hiddenUnread = 0; // arrived while the tab was hidden (shown in its title)
  let roomName = null;
  let closed = false;
  let disposed = false;
  let members = new Set();
  const byId = new Map();     // event id -> element
  const outbox = new Outbox();
  const outboxEls = new Map(); // ref -> element
  const typingBoard = new TypingBoard();
  const typingSender = new TypingSender();
  let typingTimer = null;

  // ---- header ---------------------------------------------------------
  const title = h('h1', { class: 'h4 mb-0 room-title', testid: 'room-title', i18n: ['room.titleCode', { code }] });
  const status = h('span', { class: 'conn-status', testid: 'connection-status', role: 'status', dataset: { state: 'connecting' } },
    h('span', { class: 'conn-dot', 'aria-hidden': 'true' }),
    h('span', { class: 'conn-text', i18n: 'room.state.connecting' }));
  const reconnectBtn = h('button', {
    type: 'button', class: 'btn btn-sm btn-warning', testid: 'connection-retry', hidden: true, i18n: 'room.reconnect',
  });

  const copyCodeBtn = h('button', { type: 'button', class: 'btn btn-sm btn-outline-secondary', testid: 'copy-code' },
    h('span', { i18n: 'room.copyCode' }));
  const copyLinkBtn = h('button', { type: 'button', class: 'btn btn-sm btn-outline-secondary', testid: 'copy-link' },
    h('span', { i18n: 'room.copyLink' }));
  const leaveBtn = h('button', { type: 'button', class: 'btn btn-sm btn-outline-danger', testid: 'leave-room', i18n: 'room.leave' });

  const codeBox = h('div', { class: 'room-code-box' },
    h('span', { class: 'room-code-label small text-body-secondary', id: 'room-code-label', i18n: 'room.codeLabel' }),
    h('div', { class: 'd-flex align-items-center gap-2' },
      h('span', { class: 'room-code', testid: 'room-code', 'aria-describedby': 'room-code-label', text: code }),
      copyCodeBtn));
  const shareBox = h('div', { class: 'room-share small' },
    h('span', { class: 'share-text text-body-secondary me-1', i18n: 'room.shareLabel' }),
    h('a', { href: roomPath, class: 'share-text share-link me-1', testid: 'share-link', text: shareUrl }),
    copyLinkBtn);

  const header = h('div', { class: 'room-header border-bottom' },
    h('div', { class: 'room-container room-header-grid' },
      h('div', { class: 'rh-title min-w-0' }, title),
      h('div', { class: 'rh-share min-w-0' }, shareBox),
      h('div', { class: 'rh-code' }, codeBox),
      h('div', { class: 'rh-actions' }, status, reconnectBtn, leaveBtn)));

  // ---- messages ---------------------------------------------------------
  const list = h('ol', { class: 'message-list list-unstyled mb-0', testid: 'message-list' });
  trAttr(list, 'aria-label', 'room.messagesLabel');
  const empty = h('p', { class: 'messages-empty text-body-secondary', testid: 'messages-empty', i18n: 'room.connectingMessages' });
  const scroller = h('div', { class: 'message-scroller', testid: 'message-scroller', tabindex: '0' }, empty, list);
  trAttr(scroller, 'aria-label', 'room.messagesLabel');
  const newBtnLabel = h('span', { i18n: ['room.newMessages', { count: 0 }] });
  const newBtn = h('button', { type: 'button', class: 'btn btn-primary btn-sm new-messages', testid: 'new-messages-button', hidden: true },
    newBtnLabel, h('span', { class: 'new-messages-arrow', 'aria-hidden': 'true' }));
  const announcer = h('div', { class: 'visually-hidden', testid: 'live-region', 'aria-live': 'polite', 'aria-atomic': 'false' });

  // ---- composer ---------------------------------------------------------
  const input = h('textarea', {
    id: 'composer-input', class: 'form-control composer-input', rows: '1', testid: 'composer-input',
    'aria-describedby': 'composer-hint composer-counter', enterkeyhint: 'send',
  });
  trAttr(input, 'placeholder', 'room.composerPlaceholder');
  const sendBtn = h('button', { type: 'submit', class: 'btn btn-primary composer-send', testid: 'send-button', i18n: 'room.send' });
  const counter = h('span', { id: 'composer-counter', class: 'char-counter', testid: 'char-counter', hidden: true });
  const hint = h('span', { id: 'composer-hint', class: 'composer-hint text-body-secondary', testid: 'composer-hint', i18n: 'room.composerHint' });
  const typingLine = h('span', { class: 'typing-indicator text-body-secondary', testid: 'typing-indicator', hidden: true });
  const composer = h('form', { class: 'composer', testid: 'composer', novalidate: true },
    h('label', { for: 'composer-input', class: 'visually-hidden', i18n: 'room.composerLabel' }),
    h('div', { class: 'd-flex gap-2 align-items-end' }, input, sendBtn),
    h('div', { class: 'd-flex justify-content-between gap-2 small mt-1' }, typingLine, hint, counter));

  // ---- members ------------------------------------------------------------
  const memberCount = h('span', { class: 'badge rounded-pill text-bg-secondary ms-1', testid: 'member-count', text: '0' });
  // On a phone the list is folded away behind this toggle (app.css shows it there only).
  const toggleCount = h('span', { class: 'badge rounded-pill text-bg-secondary', testid: 'members-toggle-count', text: '0' });
  const membersToggle = h('button', {
    type: 'button', class: 'members-toggle', testid: 'members-toggle', 'aria-expanded': 'false', 'aria-controls': 'member-list',
  }, h('span', { i18n: 'room.members' }), toggleCount, h('span', { class: 'members-caret', 'aria-hidden': 'true' }));
  const memberList = h('ul', { class: 'member-list list-unstyled mb-0', id: 'member-list', testid: 'member-list', 'aria-labelledby': 'members-title' });
  const side = h('aside', { class: 'room-side', testid: 'room-side', 'aria-labelledby': 'members-title', dataset: { open: 'false' } },
    h('h2', { class: 'h6 members-title mb-2', id: 'members-title' }, h('span', { i18n: 'room.members' }), memberCount),
    membersToggle,
    memberList);
  membersToggle.addEventListener('click', () => {
    const open = side.dataset.open !== 'true';
    side.dataset.open = String(open);
    membersToggle.setAttribute('aria-expanded', String(open));
  });

  // ---- leave confirmation (last member) ----------------------------------
  const confirmYes = h('button', { type: 'button', class: 'btn btn-danger', testid: 'leave-confirm-yes', i18n: 'room.leaveLastConfirm' });
  const confirmNo = h('button', { type: 'button', class: 'btn btn-outline-secondary', testid: 'leave-confirm-no', autofocus: true, i18n: 'room.leaveLastCancel' });
  const confirmDialog = h('dialog', { class: 'leave-dialog', testid: 'leave-confirm', 'aria-labelledby': 'leave-confirm-title' },
    h('h2', { class: 'h5', id: 'leave-confirm-title', i18n: 'room.leaveLastTitle' }),
    h('p', { i18n: 'room.leaveLastText' }),
    h('div', { class: 'd-flex flex-wrap justify-content-end gap-2' }, confirmNo, confirmYes));

  title.id = 'room-title-id';
  const main = h('section', { class: 'room-main', 'aria-labelledby': 'room-title-id' },
    h('div', { class: 'messages-wrap' }, scroller, newBtn),
    composer);

  const body = h('div', { class: 'room-body room-container' }, main, side);
  const node = h('div', { class: 'room', testid: 'room', dataset: { code } }, header, body, announcer, confirmDialog);

  // ---- title --------------------------------------------------------------
  function titleText() {
    const base = closed ? t('room.closedDoc') : (roomName || t('room.docTitle', { code }));
    return hiddenUnread > 0 ? `(${hiddenUnread}) ${base}` : base;
  }

  function retitle() {
    window.dispatchEvent(new Event('sala:title'));
  }

  function onVisibility() {
    if (document.visibilityState === 'visible' && hiddenUnread) {
      hiddenUnread = 0;
      retitle();
    }
  }
  document.addEventListener('visibilitychange', onVisibility);

  // ---- helpers ------------------------------------------------------------
  function announce(key, params) {
    const line = h('p', { i18n: [key, params] });
    announcer.append(line);
    while (announcer.childElementCount > 5) announcer.firstElementChild.remove();
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    unread = 0;
    newBtn.hidden = true;
  }

  function showUnread(count) {
    unread += count;
    tr(newBtnLabel, 'room.newMessages', { count: unread });
    newBtn.hidden = false;
  }

  /** Run a DOM change and keep the reader's place: follow only when at the bottom. */
  function withScroll(change, { own = false } = {}) {
    const wasNear = nearBottom();
    const fresh = change() || 0;
    empty.hidden = list.childElementCount > 0;
    if (wasNear || own) scrollToBottom();
    else if (fresh > 0) showUnread(fresh);
    if (fresh > 0 && document.visibilityState === 'hidden') {
      hiddenUnread += fresh;
      retitle();
    }
  }

  function timeEl(ms) {
    const d = new Date(ms);
    return h('time', {
      class: 'msg-time', testid: 'message-time', datetime: d.toISOString(), title: formatDateTime(d), text: formatTime(d),
    });
  }

  function setStatus(li, state, errorKey) {
    li.dataset.status = state;
    const box = li.querySelector('.msg-status');
    if (!box) return;
    box.replaceChildren();
    box.dataset.status = state;
    if (state === 'sent') {
      box.append(h('span', { class: 'status-icon', 'aria-hidden': 'true' }), h('span', { class: 'status-label', i18n: 'room.status.sent' }));
    } else if (state === 'queued') {
      box.append(h('span', { class: 'status-label', i18n: 'room.status.queued' }));
    } else if (state === 'failed') {
      const retry = h('button', { type: 'button', class: 'btn btn-link btn-sm p-0 align-baseline retry', testid: 'retry-button', i18n: 'room.retry' });
      retry.addEventListener('click', () => {
        if (outbox.retry(li.dataset.ref)) {
          setStatus(li, 'pending');
          regroup(li);
          flushOutbox();
        }
      });
      box.append(h('span', { class: 'status-label', i18n: errorKey || 'room.status.failed' }), ' ', retry);
    } else {
      box.append(h('span', { class: 'status-label', i18n: 'room.status.pending' }));
    }
  }

  function messageEl({ id, username, text, ts, own }) {
    const ms = tsMillis(ts);
    const li = h('li', {
      class: `msg${own ? ' msg-own' : ''}`,
      testid: 'message',
      dataset: { sender: username, own: own ? 'true' : 'false', ts: String(ms), ...(id ? { id, sortId: id } : {}) },
    });
    const meta = h('div', { class: 'msg-meta' },
      h('span', { class: `avatar avatar-${hashName(username)}`, 'aria-hidden': 'true', text: initial(username) }),
      h('span', { class: 'msg-sender', testid: 'message-sender', text: username }),
      own ? h('span', { class: 'msg-you', i18n: 'room.youMark' }) : null,
      timeEl(ms));
    const bubble = h('div', { class: 'msg-bubble' }, messageText(text));
    li.append(meta, bubble);
    if (own) li.append(h('div', { class: 'msg-status small', testid: 'message-status' }));
    return li;
  }

  function eventEl(frame) {
    const name = nameOf(frame.username);
    const self = name === you;
    const key = frame.type === 'join'
      ? (self ? 'room.event.joinYou' : 'room.event.join')
      : (self ? 'room.event.leaveYou' : 'room.event.leave');
    const ms = tsMillis(frame.ts);
    return h('li', {
      class: `room-event room-event-${frame.type}`,
      testid: 'room-event',
      dataset: { type: frame.type, username: name, id: frame.id, sortId: frame.id, ts: String(ms) },
    },
    h('span', { class: 'room-event-text', i18n: [key, { username: name }] }),
    ' ',
    timeEl(ms));
  }

  function systemEl(type, key, params) {
    return h('li', { class: `room-event room-event-system room-event-${type}`, testid: 'room-event', dataset: { type } },
      h('span', { class: 'room-event-text', i18n: [key, params] }));
  }

  /** The list as insertIndex reads it: items described on demand, from the end. */
  function listItems() {
    const children = list.children;
    return { length: children.length, at: (i) => describe(children[i]) };
  }

  /** A system line goes after the stored events, above the pending tail. */
  function appendSystem(li) {
    list.insertBefore(li, list.children[insertIndex(listItems(), null)] || null);
  }

  /** Insert in id order, above the pending tail (own messages not yet stored). */
  function insertOrdered(li) {
    const at = insertIndex(listItems(), li.dataset.sortId || null);
    list.insertBefore(li, list.children[at] || null);
    regroup(li);
    if (li.nextElementSibling) regroup(li.nextElementSibling);
  }

  function regroup(li) {
    if (!li.classList.contains('msg')) return;
    const prev = li.previousElementSibling;
    li.classList.toggle('msg-grouped', groupsWith(prev && describe(prev), describe(li)));
  }

  function renderMembers() {
    const names = [...members].filter(Boolean);
    names.sort((a, b) => (a === you ? -1 : b === you ? 1 : a.localeCompare(b)));
    memberList.replaceChildren(...names.map((name) => h('li', { class: 'member', testid: 'member', dataset: { username: name } },
      h('span', { class: `avatar avatar-${hashName(name)}`, 'aria-hidden': 'true', text: initial(name) }),
      h('span', { class: 'member-name', title: name, text: name }),
      name === you ? h('span', { class: 'msg-you ms-1', i18n: 'room.youMark' }) : null)));
    memberCount.textContent = String(names.length);
    toggleCount.textContent = String(names.length);
  }

  // ---- typing ---------------------------------------------------------------
  function renderTyping() {
    clearTimeout(typingTimer);
    typingTimer = null;
    const names = typingBoard.active().filter((n) => n !== you);
    typingLine.hidden = names.length === 0;
    if (names.length === 1) tr(typingLine, 'room.typing.one', { username: names[0] });
    else if (names.length === 2) tr(typingLine, 'room.typing.two', { first: names[0], second: names[1] });
    else if (names.length > 2) tr(typingLine, 'room.typing.many', { count: names.length });
    else typingLine.textContent = '';
    const next = typingBoard.nextExpiry();
    if (next != null && !disposed) typingTimer = setTimeout(renderTyping, next + 50);
  }

  /** Confirm an own message: it is stored as event id (at ts when known). */
  function confirm(li, id, ts) {
    delete li.dataset.pending;
    if (id) {
      li.dataset.id = id;
      li.dataset.sortId = id;
      byId.set(id, li);
    }
    if (ts) {
      const ms = tsMillis(ts);
      li.dataset.ts = String(ms);
      li.querySelector('.msg-time').replaceWith(timeEl(ms));
    }
    setStatus(li, 'sent');
    li.remove();
    insertOrdered(li);
  }

  /** A message/join/leave the connection has not seen before. */
  function showEvent(frame, { quiet = false } = {}) {
    if (frame.type === 'message') {
      const username = nameOf(frame.username);
      const text = String(frame.text ?? '');
      if (typingBoard.stopped(username)) renderTyping();
      if (frame.id && byId.has(frame.id)) {
        byId.get(frame.id).dataset.ts = String(tsMillis(frame.ts));
        return 0;
      }
      if (username === you) {
        const item = outbox.echo(text.trim());
        if (item) {
          const li = outboxEls.get(item.ref);
          outboxEls.delete(item.ref);
          confirm(li, frame.id, frame.ts);
          return 0;
        }
      }
      const li = messageEl({ id: frame.id, username, text, ts: frame.ts, own: username === you });
      if (username === you) setStatus(li, 'sent');
      if (frame.id) byId.set(frame.id, li);
      insertOrdered(li);
      if (!quiet && username !== you) announce('room.announce.message', { username, text });
      return username === you ? 0 : 1;
    }
    if (frame.type === 'join' || frame.type === 'leave') {
      const name = nameOf(frame.username);
      members = applyPresence(members, { type: frame.type, username: name });
      renderMembers();
      const li = eventEl(frame);
      if (frame.id) byId.set(frame.id, li);
      insertOrdered(li);
      if (!quiet && name !== you) announce(frame.type === 'join' ? 'room.event.join' : 'room.event.leave', { username: name });
      return 0;
    }
    return 0;
  }

  function flushOutbox() {
    for (const item of outbox.flush((it) => conn.send(it.text, it.ref))) {
      setStatus(outboxEls.get(item.ref), 'pending');
    }
    for (const item of outbox.items.values()) {
      if (item.state === 'queued') setStatus(outboxEls.get(item.ref), 'queued');
    }
  }

  // ---- composer behaviour ---------------------------------------------
  function textLength() {
    return [...input.value.trim()].length;
  }

  function updateCounter() {
    const n = textLength();
    const left = MAX_LENGTH - n;
    if (left > COUNTER_FROM) {
      counter.hidden = true;
    } else {
      counter.hidden = false;
      if (left >= 0) tr(counter, 'room.charsLeft', { count: left });
      else tr(counter, 'room.charsOver', { count: -left });
    }
    counter.classList.toggle('text-danger', left < 0);
    counter.classList.toggle('fw-semibold', left < 0);
    counter.classList.toggle('text-body-secondary', left >= 0);
    input.classList.toggle('is-invalid', left < 0);
    sendBtn.disabled = n === 0 || left < 0;
  }

  function send() {
    const text = input.value.trim();
    const n = [...text].length;
    if (n === 0 || n > MAX_LENGTH) return;
    const ref = randomId('m');
    const li = messageEl({ username: you, text, ts: new Date().toISOString(), own: true });
    li.dataset.pending = 'true';
    li.dataset.ref = ref;
    outbox.add(ref, text);
    outboxEls.set(ref, li);
    withScroll(() => {
      list.append(li);
      setStatus(li, 'queued');
      regroup(li);
    }, { own: true });
    flushOutbox();
    typingSender.reset();
    input.value = '';
    updateCounter();
    input.focus();
  }

  input.addEventListener('input', () => {
    updateCounter();
    if (input.value.trim() && conn.online && typingSender.shouldSend()) conn.sendTyping();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    }
  });
  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  updateCounter();

  scroller.addEventListener('scroll', () => {
    if (!newBtn.hidden && nearBottom()) {
      unread = 0;
      newBtn.hidden = true;
    }
  });
  newBtn.addEventListener('click', () => {
    scrollToBottom();
    input.focus();
  });

  async function copyWithFeedback(btn, text, doneKey) {
    const ok = await copyText(text);
    const label = btn.firstElementChild;
    const restore = label.dataset.i18n;
    tr(label, ok ? doneKey : 'room.copyFailed');
    announce(ok ? doneKey : 'room.copyFailed');
    setTimeout(() => { if (!disposed) tr(label, restore); }, 2000);
  }
  copyCodeBtn.addEventListener('click', () => copyWithFeedback(copyCodeBtn, code, 'room.copiedCode'));
  copyLinkBtn.addEventListener('click', () => copyWithFeedback(copyLinkBtn, shareUrl, 'room.copiedLink'));

  // ---- connection -------------------------------------------------------
  const stateKeys = {
    connecting: 'room.state.connecting',
    online: 'room.state.online',
    reconnecting: 'room.state.reconnecting',
    offline: 'room.state.offline',
    paused: 'room.state.paused',
    failed: 'room.state.failed',
    closed: 'room.state.closed',
  };

  function toLogin(kind, key) {
    setUser(null);
    flash(kind, key);
    navigate(`/login?next=${encodeURIComponent(roomPath)}`, { replace: true });
  }

  function showClosed() {
    closed = true;
    node.replaceChildren(closedPanel(code, 'room.closedTitle', 'room.closedText'));
    notify('warning', 'notice.roomClosed', { code });
    retitle();
    const h1 = node.querySelector('h1');
    if (h1) {
      h1.setAttribute('tabindex', '-1');
      h1.focus();
    }
  }

  const conn = new RoomConnection(code, {
    state(state) {
      if (disposed) return;
      status.dataset.state = state;
      tr(status.querySelector('.conn-text'), stateKeys[state] || 'room.state.connecting');
      node.dataset.connection = state;
      reconnectBtn.hidden = state !== 'failed';
      if (state !== 'online') {
        // Whatever went out unacked goes again, with the same ref, once back.
        for (const item of outbox.requeue()) setStatus(outboxEls.get(item.ref), 'queued');
      }
    },
    welcome(frame, info) {
      if (disposed) return;
      you = nameOf(frame.you) || you;
      const room = frame.room || {};
      if (room.name) {
        roomName = String(room.name);
        title.textContent = roomName;
        title.title = roomName;
        delete title.dataset.i18n;
        delete title.dataset.i18nParams;
        retitle();
      }
      let missed = 0;
      withScroll(() => {
        let fresh = 0;
        for (const e of info.events) {
          const n = showEvent(e, { quiet: true });
          if (e.type === 'message') missed += 1;
          fresh += n;
        }
        // Presence comes from welcome; history's joins and leaves are only shown.
        members = new Set(Array.isArray(frame.members) ? frame.members.map(nameOf) : []);
        if (you) members.add(you);
        renderMembers();
        if (info.truncated) appendSystem(systemEl('truncated', 'room.truncated'));
        if (info.reconnect) {
          appendSystem(systemEl('reconnected', 'room.reconnected', { count: missed }));
          announce('room.reconnected', { count: missed });
          if (info.duplicates > 0) {
            appendSystem(systemEl('duplicates', 'room.duplicatesSkipped', { count: info.duplicates }));
          }
        }
        tr(empty, 'room.empty');
        return info.reconnect ? fresh : 0;
      }, { own: !info.reconnect });
      flushOutbox();
      updateCounter();
    },
    event(frame) {
      if (disposed) return;
      withScroll(() => showEvent(frame));
    },
    typing(frame) {
      if (disposed) return;
      const name = nameOf(frame.username);
      if (!name || name === you) return;
      typingBoard.typing(name);
      renderTyping();
    },
    ack(frame) {
      if (disposed) return;
      const item = outbox.ack(frame.ref);
      if (!item) return;
      const li = outboxEls.get(item.ref);
      outboxEls.delete(item.ref);
      if (frame.id && byId.has(frame.id)) {
        // The broadcast came first and was shown on its own: drop the copy.
        withScroll(() => { li.remove(); });
        return;
      }
      withScroll(() => confirm(li, frame.id, null));
    },
    error(frame) {
      if (disposed) return;
      const known = ['too_long', 'rate_limited', 'invalid_frame'];
      const key = known.includes(frame.code) ? `room.error.${frame.code}` : 'room.error.other';
      const item = frame.ref ? outbox.fail(frame.ref) : null;
      if (item) {
        const li = outboxEls.get(item.ref);
        setStatus(li, 'failed', key);
        regroup(li);
      } else {
        notify('warning', key, { detail: String(frame.detail ?? '') });
      }
    },
    end(reason) {
      if (disposed) return;
      if (reason === 'logged_out') {
        if (session.loggingOut) return;
        toLogin('warning', 'notice.loggedOutElsewhere');
      } else if (reason === 'unauthorized') {
        if (session.loggingOut) return;
        toLogin('warning', 'notice.sessionExpired');
      } else if (reason === 'room_closed') {
        showClosed();
      }
    },
    async probe() {
      try {
        await auth.me();
      } catch (err) {
        if (err.status === 401) return 'unauthorized';
        return 'ok';
      }
      try {
        await rooms.get(code);
      } catch (err) {
        if (err.status === 404) return 'room_closed';
        if (err.status === 401) return 'unauthorized';
      }
      return 'ok';
    },
  });

  reconnectBtn.addEventListener('click', () => conn.retry());

  async function leave() {
    await conn.leave();
    flash('info', 'notice.leftRoom', { code });
    navigate('/lobby');
  }

  leaveBtn.addEventListener('click', () => {
    // Alone here: leaving closes the room for good; say so first.
    if (conn.online && [...members].every((m) => m === you)) {
      confirmDialog.showModal();
      return;
    }
    leave();
  });
  confirmNo.addEventListener('click', () => confirmDialog.close());
  confirmYes.addEventListener('click', () => {
    confirmDialog.close();
    leave();
  });

  const hooks = {
    code,
    dropSocket: (opts) => conn.drop(opts || {}),
    resume: () => conn.resume(),
    /** An explicit leave before logging out. */
    leave: () => conn.leave(),
    info: () => ({
      code,
      state: conn.state,
      lastId: conn.lastId,
      connects: conn.connects,
      lastUrl: conn.lastUrl,
      duplicates: conn.duplicates,
      pending: outbox.size,
      history: conn.history.slice(),
    }),
  };

  return {
    node,
    title: 'room.docTitle',
    titleParams: { code },
    titleText,
    focus: input,
    focusOnLoad: true,
    hooks,
    ready() {
      conn.start();
    },
    cleanup() {
      disposed = true;
      clearTimeout(typingTimer);
      document.removeEventListener('visibilitychange', onVisibility);
      conn.stop();
    },
  };
}
