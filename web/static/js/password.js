// A rough password strength estimate for the hint under the password field.
// It only guides; the server enforces the real rule (8–128 characters).

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

export const SCORE_KEYS = [
  'password.strength.tooShort',
  'password.strength.weak',
  'password.strength.fair',
  'password.strength.good',
  'password.strength.strong',
];
