"""User-supplied text is shown as text: nothing typed by a person runs as code."""

import re
import uuid

from playwright.sync_api import expect

from tests.e2e.helpers import (
    create_room,
    join_room,
    messages_with,
    new_person,
    register,
    send,
    wait_ready,
)

PAYLOAD = "<img src=x onerror=window.__xss=1>"


def test_markup_in_messages_room_names_and_usernames_is_text(new_page) -> None:
    alice, bob = new_page(), new_page()
    register(alice, new_person("alice"))
    register(bob, new_person("bob"))
    code = create_room(alice, PAYLOAD)
    join_room(bob, code)
    expect(bob.get_by_test_id("room-title")).to_have_text(PAYLOAD)

    text = f"{PAYLOAD} <script>window.__xss=2</script> {uuid.uuid4().hex[:6]}"
    send(alice, text)
    shown = messages_with(bob, "window.__xss=2")
    expect(shown).to_have_count(1)
    expect(shown).to_have_text(text)
    for page in (alice, bob):
        assert page.locator(".message-list img, .room img").count() == 0
        assert page.evaluate("window.__xss") is None

    # A username made of markup: refused, and the refusal is shown as text.
    page = new_page()
    page.goto("/register")
    wait_ready(page)
    page.get_by_test_id("register-email").fill(new_person("mallory").email)
    page.get_by_test_id("register-username").fill(PAYLOAD)
    page.get_by_test_id("register-password").fill("correct horse battery staple")
    page.get_by_test_id("register-confirm").fill("correct horse battery staple")
    page.get_by_test_id("register-submit").click()
    expect(page.get_by_test_id("register-username-error")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/register$"))

    # The server refuses it too (the form's own check is not the only guard).
    response = page.request.post(
        "/api/auth/register",
        data={
            "email": new_person("mallory").email,
            "username": PAYLOAD,
            "password": "correct horse battery staple",
        },
    )
    assert response.status == 422

    # Markup in a path that is echoed back on the page.
    page.goto("/nowhere/" + PAYLOAD)
    expect(page.get_by_test_id("not-found")).to_contain_text("<img src=x")
    assert page.evaluate("window.__xss") is None
