"""Request and response bodies of the auth API."""

import unicodedata
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    EmailStr,
    Field,
    StringConstraints,
)


def _nfkc(value: object) -> object:
    """Fold compatibility characters (full-width letters and such) before checking."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


Username = Annotated[
    str,
    BeforeValidator(_nfkc),
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.\-]{3,32}$"),
]
# Postgres text cannot hold NUL, and no one types it: refused as invalid input.
NO_NUL = r"^[^\x00]*$"
Password = Annotated[str, Field(min_length=8, max_length=128, pattern=NO_NUL)]


def _lower_domain(email: str) -> str:
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


Email = Annotated[EmailStr, Field(max_length=254), AfterValidator(_lower_domain)]


class RegisterRequest(BaseModel):
    email: Email
    username: Username
    password: Password


class LoginRequest(BaseModel):
    email: Annotated[str, Field(min_length=1, max_length=320, pattern=NO_NUL)]
    password: Annotated[str, Field(min_length=1, max_length=1024, pattern=NO_NUL)]


class UserOut(BaseModel):
    id: UUID
    email: str
    username: str


class RegisteredUser(UserOut):
    created_at: datetime


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut
