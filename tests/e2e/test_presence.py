"""A room survives what a page does to its socket: reloads, navigation, a lost network.

A socket that goes away without an explicit leave keeps its member present
for the leave grace (SALA_LEAVE_GRACE_SECONDS, a few seconds in tests), so
none of this shows a leave or closes a room; the Leave button does, at once.
"""

import re
import uuid

from playwright.sync_api import Page, expect

from tests.conftest import TEST_SETTINGS
from tests.e2e.helpers import (
    create_room,
    log_out,
    members,
    messages_with,
    new_person,
    register,
    send,
    wait_online,
    wait_ready,
)
from tests.e2e.test_chat import two_in_a_room

GRACE_MS = float(TEST_SETTINGS["SALA_LEAVE_GRACE_SECONDS"]) * 1000


def leaves(page: Page, username: str | None = None):
    selector = '[data-testid="room-event"][data-type="leave"]'
    if username:
        selector += f'[data-username="{username}"]'
    return page.locator(selector)


def assert_room_intact(page: Page, code: str, text: str) -> None:
    wait_ready(page)
    wait_online(page)
    expect(page.get_by_test_id("room-code")).to_have_text(code)
    expect(messages_with(page, text)).to_have_count(1)
    expect(leaves(page)).to_have_count(0)
    expect(page.get_by_test_id("room-closed")).to_have_count(0)


def test_alone_in_a_room_reloads_and_navigation_keep_it(new_page) -> None:
    page = new_page()
    register(page, new_person("solo"))
    code = create_room(page, "Mine")
    text = f"still here {uuid.uuid4().hex[:6]}"
    send(page, text)

    for _ in range(5):
        page.reload()
        assert_room_intact(page, code, text)

    # Away to another page of the site and back with the browser's Back button.
    page.get_by_test_id("nav-about").click()
    expect(page).to_have_url(re.compile(r"/about$"))
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/r/{code}$"))
    assert_room_intact(page, code, text)

    # And by typing its address again.
    page.goto("/lobby")
    wait_ready(page)
    page.goto(f"/r/{code}")
    assert_room_intact(page, code, text)
    expect(page.get_by_test_id("room-title")).to_have_text("Mine")
    assert page.request.get(f"/api/rooms/{code}").status == 200


def test_a_member_who_presses_leave_is_announced_at_once(new_page) -> None:
    alice, bob, _, _, b_name = two_in_a_room(new_page)
    pressed = bob.evaluate("Date.now()")
    bob.get_by_test_id("leave-room").click()
    expect(bob).to_have_url(re.compile(r"/lobby$"))
    leave = leaves(alice, b_name)
    expect(leave).to_have_count(1)
    expect(members(alice)).to_have_count(1)
    # Recorded when pressed, not when a grace ran out.
    assert int(leave.get_attribute("data-ts")) - pressed < GRACE_MS


def test_logging_out_in_a_room_is_a_leave_at_once(new_page) -> None:
    alice, bob, _, _, b_name = two_in_a_room(new_page)
    pressed = bob.evaluate("Date.now()")
    log_out(bob)
    leave = leaves(alice, b_name)
    expect(leave).to_have_count(1)
    expect(members(alice)).to_have_count(1)
    assert int(leave.get_attribute("data-ts")) - pressed < GRACE_MS


def test_a_reload_with_others_present_shows_no_leave_or_join(new_page) -> None:
    alice, bob, code, _, b_name = two_in_a_room(new_page)
    joins = alice.locator(f'[data-testid="room-event"][data-type="join"][data-username="{b_name}"]')
    expect(joins).to_have_count(1)
    bob.reload()
    wait_online(bob)
    expect(bob.get_by_test_id("room-code")).to_have_text(code)
    marker = f"after the reload {uuid.uuid4().hex[:6]}"
    send(bob, marker)
    expect(messages_with(alice, marker)).to_have_count(1)
    expect(leaves(alice, b_name)).to_have_count(0)
    expect(joins).to_have_count(1)
    expect(members(alice)).to_have_count(2)


def test_offline_is_shown_and_what_was_typed_is_sent_once_when_back(
    new_page,
) -> None:
    alice, bob, *_ = two_in_a_room(new_page)
    status = alice.get_by_test_id("connection-status")

    alice.context.set_offline(True)
    expect(status).to_have_attribute("data-state", "offline")
    expect(status).to_contain_text("Offline")
    text = f"typed while offline {uuid.uuid4().hex[:6]}"
    box = alice.get_by_test_id("composer-input")
    box.fill(text)
    box.press("Enter")
    mine = alice.locator('[data-testid="message"][data-own="true"]').filter(has_text=text)
    expect(mine).to_have_attribute("data-status", "queued")
    expect(messages_with(bob, text)).to_have_count(0)

    alice.context.set_offline(False)
    wait_online(alice)
    expect(mine).to_have_attribute("data-status", "sent")
    expect(messages_with(bob, text)).to_have_count(1)
    expect(messages_with(alice, text)).to_have_count(1)
    # Sent exactly once: a fresh page's history holds one copy too.
    bob.reload()
    wait_online(bob)
    expect(messages_with(bob, text)).to_have_count(1)


def test_after_the_backoff_the_page_gives_up_and_offers_retry(new_page) -> None:
    # Bob stays, so the room outlives Alice's grace while she cannot connect.
    page, bob, code, *_ = two_in_a_room(new_page)
    text = f"before the outage {uuid.uuid4().hex[:6]}"
    send(page, text)
    # Every new handshake fails, as if the edge had no gateway left.
    page.evaluate(
        "() => { const C = window.WebSocket; window.__salaRealSocket = C;"
        " window.WebSocket = function (url) { return new C(url.replace('/ws?', '/ws-refused?')); }; }"
    )
    page.evaluate("window.__sala.debugDropSocket()")
    status = page.get_by_test_id("connection-status")
    expect(status).to_have_attribute("data-state", "failed", timeout=90_000)
    expect(status).to_contain_text("Could not reconnect")
    retry = page.get_by_test_id("connection-retry")
    expect(retry).to_be_visible()

    page.evaluate("() => { window.WebSocket = window.__salaRealSocket; }")
    retry.click()
    wait_online(page)
    expect(retry).to_be_hidden()
    expect(page.get_by_test_id("room-code")).to_have_text(code)
    expect(messages_with(page, text)).to_have_count(1)
    after = f"back again {uuid.uuid4().hex[:6]}"
    send(page, after)
    expect(messages_with(bob, after)).to_have_count(1)
