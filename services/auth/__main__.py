"""``python -m services.auth``: run the auth service."""

from services.auth.app import create_app
from services.auth.settings import AuthSettings
from services.common.serve import serve

serve("auth", AuthSettings, create_app)
