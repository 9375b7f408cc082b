// Room codes as the server accepts them (services/common/room_codes.py):
// 4 to 16 characters from one 25-character alphabet without look-alikes.

export const CODE_ALPHABET = 'ACDEFGHJKMNPQRTUVWXY34679';
export const CODE_MIN = 4;
export const CODE_MAX = 16;
const CODE_RE = new RegExp(`^[${CODE_ALPHABET}]{${CODE_MIN},${CODE_MAX}}$`);

/** decodeURIComponent that answers null instead of throwing on a malformed escape. */
export function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** Accept "abc 234", "abc-234" or a pasted share link; return "ABC234". */
export function normalizeCode(raw) {
  let s = String(raw ?? '').trim();
  const m = /\/r\/([^/?#\s]+)/.exec(s);
  if (m) s = safeDecode(m[1]) ?? m[1];
  return s.replace(/[\s-]+/g, '').toUpperCase();
}

export function isValidCode(code) {
  return CODE_RE.test(String(code));
}
