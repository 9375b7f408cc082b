// A rough password strength estimate for the hint under the password field,
// and the server's refusals checked early. The server enforces the real
// rules (8–128 characters, not common, not personal, not one character
// repeated); the client only says so sooner.

const COMMON = [
  'password', 'passw0rd', 'contraseña', 'contrasena', 'qwerty', 'azerty', 'letmein', 'welcome',
  'iloveyou', 'admin', 'abc123', '123456', '654321', 'monkey', 'dragon', 'football', 'sala',
];

export function codePoints(s) {
  return [...s].length;
}

/** Score 0..4 (0 too short, 1 weak, 2 fair, 3 good, 4 strong). */
export function passwordScore(password, { email = '', username = '' } = {}) {
  const length = codePoints(password);
  if (length < 8) return 0;
  const lower = password.toLowerCase();
  let classes = 0;
  if (/[a-z]/.test(password)) classes += 1;
  if (/[A-Z]/.test(password)) classes += 1;
  if (/[0-9]/.test(password)) classes += 1;
  if (/[^A-Za-z0-9]/.test(password)) classes += 1;
  let score = 1;
  if (length >= 12) score += 1;
  if (classes >= 3 || length >= 16) score += 1;
  if (length >= 14 && classes >= 2) score += 1;
  const local = email.split('@')[0].toLowerCase();
  const personal = [username.toLowerCase(), local].filter((s) => s.length >= 3);
  if (personal.some((s) => lower.includes(s))) score = Math.min(score, 1);
  if (COMMON.some((w) => lower.includes(w))) score = Math.min(score, 1);
  if (/^(.)\1+$/.test(password) || /^(0123456789|123456789|12345678|abcdefgh)/.test(lower)) score = 1;
  return Math.max(1, Math.min(4, score));
}

/** The catalogue key of the rule the password breaks, or null. Mirrors the server's checks. */
export function passwordProblem(password, { email = '', username = '' } = {}) {
  const length = codePoints(password);
  if (length < 8 || length > 128) return 'register.error.passwordLength';
  if (/^(.)\1+$/u.test(password)) return 'register.error.passwordRepeat';
  const lower = password.toLowerCase();
  const name = String(username).toLowerCase();
  if (name && lower.includes(name)) return 'register.error.passwordPersonal';
  const e = String(email).toLowerCase();
  const local = e.includes('@') ? e.slice(0, e.lastIndexOf('@')) : '';
  for (const part of new Set([local, local.split('+')[0]])) {
    if (part && (lower === part || (codePoints(part) >= 3 && lower.includes(part)))) return 'register.error.passwordPersonal';
  }
  return null;
}

export const SCORE_KEYS = [
  'password.strength.tooShort',
  'password.strength.weak',
  'password.strength.fair',
  'password.strength.good',
  'password.strength.strong',
];
