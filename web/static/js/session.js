// Who is signed in. The cookie is HttpOnly, so GET /api/auth/me is the
// only way to know; the answer is kept here and announced with an event.

import { auth } from './api.js';

export const session = {
  user: null,        // {id, email, username} or null
  loggingOut: false, // true while this tab logs out (so a 4001 close is expected)
};

export function setUser(user) {
  session.user = user || null;
  window.dispatchEvent(new CustomEvent('sala:session', { detail: session.user }));
}

/**
 * Ask the server who we are (auth.me refreshes an expired access token
 * first when it can). Returns the user or null; throws ApiError on server trouble.
 */
export async function loadUser() {
  try {
    setUser(await auth.me());
  } catch (err) {
    if (err.status === 401) setUser(null);
    else throw err;
  }
  return session.user;
}
