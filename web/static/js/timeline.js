// Where an event goes in the message list and which messages share a
// header. Pure functions over plain descriptions of the list's items, so the
// ordering rules are tested without a page.

import { compareIds } from './eventid.js';

export const GROUP_WINDOW_MS = 5 * 60 * 1000;

/**
 * Index at which to insert an event with id `id` into `items` (in display
 * order, each { id, pending }): in id order, but above the pending tail (own
 * messages not stored yet), which always stays last. Items without an id
 * (system lines) stay where they are relative to what precedes them.
 * `items` is an array or { length, at(i) }; only the tail is read, so a
 * new event costs the same however long the list is.
 */
export function insertIndex(items, id) {
  const at = (i) => (typeof items.at === 'function' ? items.at(i) : items[i]);
  let i = items.length;
  while (i > 0 && at(i - 1).pending) i -= 1;
  if (id == null) return i;
  while (i > 0) {
    const prev = at(i - 1);
    if (prev.id == null || compareIds(prev.id, id) <= 0) break;
    i -= 1;
  }
  return i;
}

/** Whether `cur` is shown under `prev`'s header: same sender, close in time, neither failed. */
export function groupsWith(prev, cur, windowMs = GROUP_WINDOW_MS) {
  if (!prev || !cur || prev.kind !== 'message' || cur.kind !== 'message') return false;
  if (prev.sender !== cur.sender) return false;
  if (prev.status === 'failed' || cur.status === 'failed') return false;
  return Math.abs(Number(cur.ts) - Number(prev.ts)) < windowMs;
}

/** The present members after a join or leave (welcome gives the full list). */
export function applyPresence(members, frame) {
  const next = new Set(members);
  if (frame.type === 'join') next.add(frame.username);
  else if (frame.type === 'leave') next.delete(frame.username);
  return next;
}
