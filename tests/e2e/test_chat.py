"""Two or more people in a room: messages, join and leave notices, reconnection."""

import re
import time
import uuid

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    create_room,
    join_room,
    members,
    messages_with,
    new_person,
    notice,
    register,
    send,
    wait_online,
)


def two_in_a_room(new_page) -> tuple[Page, Page, str, str, str]:
    """Alice creates a room, Bob joins it by code. Returns (alice, bob, code, alice name, bob name)."""
    alice, bob = new_page(), new_page()
    a, b = new_person("alice"), new_person("bob")
    register(alice, a)
    register(bob, b)
    code = create_room(alice, "Plans")
    join_room(bob, code)
    expect(members(alice)).to_have_count(2)
    expect(members(bob)).to_have_count(2)
    return alice, bob, code, a.username, b.username


def test_two_people_chat_in_a_room(new_page) -> None:
    alice, bob, code, a_name, b_name = two_in_a_room(new_page)

    # Alice sees Bob arrive, as a notice set apart from messages.
    join = alice.locator(
        f'[data-testid="room-event"][data-type="join"][data-username="{b_name}"]'
    )
    expect(join).to_have_count(1)
    expect(join).to_contain_text(b_name)
    expect(alice.get_by_test_id("member-list")).to_contain_text(b_name)
    expect(bob.get_by_test_id("room-title")).to_have_text("Plans")
    expect(bob.get_by_test_id("share-link")).to_have_text(re.compile(rf"/r/{code}$"))

    hello = f"hello from alice {uuid.uuid4().hex[:6]}"
    reply = f"hi alice, bob here {uuid.uuid4().hex[:6]}"
    send(alice, hello)
    expect(messages_with(bob, hello)).to_have_count(1)
    send(bob, reply)
    expect(messages_with(alice, reply)).to_have_count(1)
    expect(messages_with(alice, hello)).to_have_count(1)

    # Sender names, and one's own messages marked as such.
    on_bob = bob.locator('[data-testid="message"]').filter(has_text=hello)
    expect(on_bob).to_have_attribute("data-own", "false")
    expect(on_bob).to_have_attribute("data-sender", a_name)
    expect(on_bob.get_by_test_id("message-sender")).to_have_text(a_name)
    on_alice = alice.locator('[data-testid="message"]').filter(has_text=hello)
    expect(on_alice).to_have_attribute("data-own", "true")

    # New messages are also put in a live region for screen readers.
    expect(bob.get_by_test_id("live-region")).to_contain_text(hello)


def test_composer_keys_grouping_and_counter(new_page) -> None:
    page = new_page()
    register(page, new_person("carol"))
    create_room(page)
    box = page.get_by_test_id("composer-input")

    # Shift+Enter is a new line, Enter sends.
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    expect(box).to_have_value("")
    sent = page.locator('[data-testid="message"][data-own="true"]').last
    expect(sent.get_by_test_id("message-text")).to_have_text("first line\nsecond line")
    expect(sent).to_have_attribute("data-status", "sent")

    # A second message right after is grouped under the first one's header.
    send(page, "and a follow-up")
    follow = page.locator('[data-testid="message"]').filter(has_text="and a follow-up")
    expect(follow).to_have_class(re.compile(r"\bmsg-grouped\b"))

    # The counter appears near the 2000-character limit and blocks sending past it.
    counter = page.get_by_test_id("char-counter")
    expect(counter).to_be_hidden()
    box.fill("x" * 1950)
    expect(counter).to_be_visible()
    expect(counter).to_contain_text("50")
    box.fill("x" * 2003)
    expect(counter).to_contain_text("3")
    expect(page.get_by_test_id("send-button")).to_be_disabled()
    box.press("Enter")
    expect(box).to_have_value("x" * 2003)
    box.fill("x" * 2000)
    expect(page.get_by_test_id("send-button")).to_be_enabled()


def test_leave_notices_member_list_and_closed_code(new_page) -> None:
    alice, bob, code, _, b_name = two_in_a_room(new_page)

    bob.get_by_test_id("leave-room").click()
    expect(bob).to_have_url(re.compile(r"/lobby$"))
    expect(notice(bob, "notice.leftRoom")).to_contain_text(code)

    leave = alice.locator(
        f'[data-testid="room-event"][data-type="leave"][data-username="{b_name}"]'
    )
    expect(leave).to_have_count(1)
    expect(leave).to_contain_text(b_name)
    expect(members(alice)).to_have_count(1)
    expect(alice.get_by_test_id("member-count")).to_have_text("1")
    expect(alice.get_by_test_id("member-list")).not_to_contain_text(b_name)

    # The last one leaves: asked first, then the room closes and its code stops working.
    alice.get_by_test_id("leave-room").click()
    dialog = alice.get_by_test_id("leave-confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("deleted")
    alice.get_by_test_id("leave-confirm-yes").click()
    expect(alice).to_have_url(re.compile(r"/lobby$"))
    deadline = time.monotonic() + 15
    while (
        alice.request.get(f"/api/rooms/{code}").status != 404
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    bob.get_by_test_id("join-code-input").fill(code)
    bob.get_by_test_id("join-room-button").click()
    error = bob.get_by_test_id("join-code-input-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(code)
    expect(bob.get_by_test_id("join-code-input")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(bob).to_have_url(re.compile(r"/lobby$"))


def test_reconnect_fetches_missed_messages_once(new_page) -> None:
    alice, bob, _, _, b_name = two_in_a_room(new_page)
    before = f"before the drop {uuid.uuid4().hex[:6]}"
    send(alice, before)
    expect(messages_with(bob, before)).to_have_count(1)

    # Bob's socket is cut and stays down while Alice talks.
    bob.evaluate("window.__sala.debugDropSocket({ pause: true })")
    expect(bob.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "paused"
    )
    expect(
        alice.locator(
            f'[data-testid="room-event"][data-type="leave"][data-username="{b_name}"]'
        )
    ).to_have_count(1)
    missed = [f"missed {i} {uuid.uuid4().hex[:6]}" for i in range(3)]
    for text in missed:
        send(alice, text)
    for text in missed:
        expect(messages_with(bob, text)).to_have_count(0)

    # Back: reconnects with since=<last event id> and shows each missed message once.
    bob.evaluate("window.__sala.debugResume()")
    wait_online(bob)
    for text in missed:
        expect(messages_with(bob, text)).to_have_count(1)
    expect(messages_with(bob, before)).to_have_count(1)
    info = bob.evaluate("window.__sala.roomInfo()")
    assert "since=" in info["lastUrl"], info
    reconnected = bob.locator('[data-testid="room-event"][data-type="reconnected"]')
    expect(reconnected).to_have_count(1)
    expect(reconnected).to_contain_text("3")

    # In order: the missed messages come after the earlier one, in the order sent.
    texts = bob.get_by_test_id("message-text").all_inner_texts()
    positions = [
        next(i for i, t in enumerate(texts) if t == want) for want in [before, *missed]
    ]
    assert positions == sorted(positions), texts

    # A plain drop (no pause) reconnects by itself with backoff; nothing is doubled.
    bob.evaluate("window.__sala.debugDropSocket()")
    expect(
        bob.locator('[data-testid="room-event"][data-type="reconnected"]')
    ).to_have_count(2)
    wait_online(bob)
    after = f"after the second drop {uuid.uuid4().hex[:6]}"
    send(alice, after)
    expect(messages_with(bob, after)).to_have_count(1)
    for text in [before, *missed]:
        expect(messages_with(bob, text)).to_have_count(1)
    send(bob, "still here")
    expect(messages_with(alice, "still here")).to_have_count(1)


def test_reading_history_is_not_interrupted_by_new_messages(new_page) -> None:
    alice, bob, *_ = two_in_a_room(new_page)
    for i in range(30):
        send(alice, f"filler message number {i}")
    expect(messages_with(bob, "filler message number 29")).to_have_count(1)
    scroller = bob.get_by_test_id("message-scroller")
    assert scroller.evaluate("el => el.scrollHeight > el.clientHeight + 100")
    # At the bottom, new messages scroll into view by themselves.
    assert scroller.evaluate(
        "el => el.scrollHeight - el.scrollTop - el.clientHeight < 48"
    )

    # Scrolled up to read: a new message does not move the view; a button offers it.
    scroller.evaluate("el => { el.scrollTop = 0; }")
    send(alice, "news while bob reads")
    expect(messages_with(bob, "news while bob reads")).to_have_count(1)
    button = bob.get_by_test_id("new-messages-button")
    expect(button).to_be_visible()
    expect(button).to_contain_text("1")
    assert scroller.evaluate("el => el.scrollTop") == 0
    send(alice, "and more news")
    expect(button).to_contain_text("2")

    button.click()
    expect(button).to_be_hidden()
    assert scroller.evaluate(
        "el => el.scrollHeight - el.scrollTop - el.clientHeight < 48"
    )
    expect(bob.get_by_test_id("composer-input")).to_be_focused()


def test_a_closed_or_unknown_room_says_so(new_page) -> None:
    page = new_page()
    register(page, new_person("ivan"))
    page.goto("/r/ACDEFGHJ")  # well formed; codes in use are 6 long
    expect(page.get_by_test_id("room-closed")).to_be_visible()
    expect(notice(page, "notice.roomClosed")).to_contain_text("ACDEFGHJ")
    page.get_by_test_id("back-to-lobby").click()
    expect(page).to_have_url(re.compile(r"/lobby$"))
