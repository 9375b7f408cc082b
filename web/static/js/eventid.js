// Event ids are stream ids "<ms>-<seq>". Order them by the two integers,
// never as strings ("9-0" < "10-0").

export function parseId(id) {
  const s = String(id);
  const i = s.indexOf('-');
  const ms = Number(i < 0 ? s : s.slice(0, i));
  const seq = i < 0 ? 0 : Number(s.slice(i + 1));
  return [Number.isFinite(ms) ? ms : 0, Number.isFinite(seq) ? seq : 0];
}

/** <0 when a is before b, 0 when equal, >0 after. */
export function compareIds(a, b) {
  const [am, as] = parseId(a);
  const [bm, bs] = parseId(b);
  return am !== bm ? am - bm : as - bs;
}

export function maxId(a, b) {
  if (a == null) return b;
  if (b == null) return a;
  return compareIds(a, b) >= 0 ? a : b;
}
