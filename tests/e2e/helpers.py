"""Steps the browser tests share: a person registering, logging in, opening rooms."""

import json
import re
import time
import uuid
from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

PASSWORD = "correct horse battery staple"


@dataclass
class Person:
    email: str
    username: str
    password: str = PASSWORD


def new_person(prefix: str = "user") -> Person:
    tag = uuid.uuid4().hex[:10]
    return Person(email=f"{prefix}-{tag}@example.com", username=f"{prefix}_{tag}")


def wait_ready(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def notice(page: Page, key: str):
    """The notice shown for a catalogue key (independent of the language)."""
    return page.locator(f'[data-testid="notice"][data-key="{key}"]')


def submit(
    page: Page, button: str, form_error: str, outcome: Locator, attempts: int = 4
) -> None:
    """Click a form's submit button until the expected outcome shows.

    Auth limits registrations and logins per address (the whole suite comes
    from one); when the form says "too many attempts", wait as long as it
    says and submit again. Any other outcome fails the test.
    """
    limited = page.get_by_test_id(form_error).and_(
        page.locator('[data-i18n^="errors.tooMany"]')
    )
    for _ in range(attempts):
        page.get_by_test_id(button).click()
        expect(outcome.or_(limited)).to_be_visible()
        if not limited.is_visible():
            break
        params = json.loads(limited.get_attribute("data-i18n-params") or "{}")
        time.sleep(min(int(params.get("count", 5)), 65) + 0.5)
    expect(outcome).to_be_visible()


def register(page: Page, person: Person) -> None:
    """Register through the form; the UI logs the new account in and opens the lobby."""
    page.goto("/register")
    wait_ready(page)
    page.get_by_test_id("register-email").fill(person.email)
    page.get_by_test_id("register-username").fill(person.username)
    page.get_by_test_id("register-password").fill(person.password)
    page.get_by_test_id("register-confirm").fill(person.password)
    submit(
        page,
        "register-submit",
        "register-form-error",
        notice(page, "notice.accountCreated"),
    )
    expect(page).to_have_url(re.compile(r"/lobby$"))
    expect(notice(page, "notice.accountCreated")).to_be_visible()
    expect(page.get_by_test_id("nav-username")).to_have_text(person.username)


def register_by_api(page: Page, person: Person) -> None:
    for _ in range(4):
        response = page.request.post(
            "/api/auth/register",
            data={
                "email": person.email,
                "username": person.username,
                "password": person.password,
            },
        )
        if response.status != 429:
            break
        time.sleep(min(int(response.headers.get("retry-after", "5")), 65) + 0.5)
    assert response.status == 201, response.text()


def log_in(page: Page, person: Person) -> None:
    """Fill the login form on the current page (which must be /login)."""
    expect(page.get_by_test_id("login-form")).to_be_visible()
    page.get_by_test_id("login-email").fill(person.email)
    page.get_by_test_id("login-password").fill(person.password)
    submit(page, "login-submit", "login-form-error", notice(page, "notice.welcomeBack"))


def log_out(page: Page) -> None:
    page.get_by_test_id("logout-button").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(notice(page, "notice.loggedOut")).to_be_visible()
    expect(page.get_by_test_id("nav-login")).to_be_visible()


def create_room(page: Page, name: str = "") -> str:
    """From the lobby: create a room, land in it; returns its code."""
    if name:
        page.get_by_test_id("room-name-input").fill(name)
    page.get_by_test_id("create-room-button").click()
    expect(page).to_have_url(re.compile(r"/r/[A-Z0-9]+$"))
    expect(notice(page, "notice.roomCreated")).to_be_visible()
    code = page.get_by_test_id("room-code").inner_text().strip()
    assert re.fullmatch(r"[ACDEFGHJKMNPQRTUVWXY34679]{4,16}", code), code
    expect(notice(page, "notice.roomCreated")).to_contain_text(code)
    wait_online(page)
    return code


def join_room(page: Page, code: str) -> None:
    """From the lobby: join by code (typed in lower case, as people do)."""
    page.get_by_test_id("join-code-input").fill(code.lower())
    page.get_by_test_id("join-room-button").click()
    expect(page).to_have_url(re.compile(rf"/r/{code}$"))
    expect(page.get_by_test_id("room-code")).to_have_text(code)
    wait_online(page)


def wait_online(page: Page) -> None:
    expect(page.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "online"
    )


def send(page: Page, text: str) -> None:
    """Type and press Enter; wait until the server acknowledged it."""
    box = page.get_by_test_id("composer-input")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")
    mine = (
        page.locator('[data-testid="message"][data-own="true"]')
        .filter(has_text=text)
        .last
    )
    expect(mine).to_have_attribute("data-status", "sent")


def messages_with(page: Page, text: str):
    return page.get_by_test_id("message-text").filter(has_text=text)


def members(page: Page):
    return page.get_by_test_id("member-list").get_by_test_id("member")
