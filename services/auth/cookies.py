"""The two cookies of a browser session.

``chat_session`` holds the short-lived access token and goes everywhere
(``Path=/``). ``chat_refresh`` holds the refresh token and goes only to the
auth API, where it is swapped for a new pair before the access token expires.
"""

from fastapi import Request, Response

from services.auth.settings import AuthSettings
from services.common.sessions import SESSION_COOKIE

REFRESH_COOKIE = "chat_refresh"
REFRESH_PATH = "/api/auth"


def _secure(request: Request, settings: AuthSettings) -> bool:
    """Secure whenever the edge serves HTTPS (it says so in X-Forwarded-Proto), or when configured."""
    return settings.cookie_secure or request.url.scheme == "https"


def set_session_cookies(
    response: Response, request: Request, settings: AuthSettings, access_token: str, access_ttl: int, refresh_token: str
) -> None:
    secure = _secure(request, settings)
    response.set_cookie(
        SESSION_COOKIE, access_token, max_age=access_ttl, httponly=True, samesite="lax", secure=secure, path="/"
    )
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=settings.session_ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=secure,
        path=REFRESH_PATH,
    )


def clear_session_cookies(response: Response, request: Request, settings: AuthSettings) -> None:
    secure = _secure(request, settings)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, httponly=True, samesite="strict", secure=secure)
