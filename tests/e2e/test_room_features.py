"""What people expect of a chat page: safe links, unread counts, typing, a
confirmation before closing a room, a usable phone layout, notices that go
away, the visitor's language from the first paint."""

import re
import uuid

from playwright.sync_api import Page, expect

from tests.e2e.conftest import PHONE
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
    wait_ready,
)
from tests.e2e.test_chat import two_in_a_room

LANDSCAPE = {"width": 844, "height": 390}


def test_links_in_messages_are_clickable_and_safe(new_page) -> None:
    alice, bob, *_ = two_in_a_room(new_page)
    tag = uuid.uuid4().hex[:6]
    send(
        alice,
        f"{tag} see https://example.com/a?b=1. not javascript:alert(1) nor <a href=http://evil.test>x</a>",
    )
    text = messages_with(bob, tag)
    expect(text).to_have_count(1)
    links = text.get_by_test_id("message-link")
    expect(links).to_have_count(2)
    first = links.first
    expect(first).to_have_attribute("href", "https://example.com/a?b=1")
    expect(first).to_have_attribute("target", "_blank")
    expect(first).to_have_attribute("rel", "noopener noreferrer")
    expect(first).to_have_text("https://example.com/a?b=1")
    # The markup someone typed is text; only its http URL became a link.
    expect(links.nth(1)).to_have_attribute("href", "http://evil.test/")
    expect(text).to_contain_text("<a href=")
    hrefs = text.locator("a").evaluate_all("els => els.map(e => e.protocol)")
    assert set(hrefs) <= {"http:", "https:"}, hrefs


def hide(page: Page, hidden: bool) -> None:
    """Make the page believe its tab is hidden (or shown again)."""
    state = "hidden" if hidden else "visible"
    page.evaluate(
        f"""() => {{
          Object.defineProperty(document, 'visibilityState', {{ value: '{state}', configurable: true }});
          Object.defineProperty(document, 'hidden', {{ value: {str(hidden).lower()}, configurable: true }});
          document.dispatchEvent(new Event('visibilitychange'));
        }}"""
    )


def test_unread_count_in_the_tab_title_while_hidden(new_page) -> None:
    alice, bob, *_ = two_in_a_room(new_page)
    expect(bob).to_have_title("Plans · Sala")
    hide(bob, True)
    send(alice, "one while away")
    expect(bob).to_have_title("(1) Plans · Sala")
    send(alice, "two while away")
    expect(bob).to_have_title("(2) Plans · Sala")
    send(bob, "my own message does not count")
    expect(bob).to_have_title("(2) Plans · Sala")
    hide(bob, False)
    expect(bob).to_have_title("Plans · Sala")


def test_typing_indicator_shows_others_typing_until_their_message(new_page) -> None:
    alice, bob, _, a_name, _ = two_in_a_room(new_page)
    alice.get_by_test_id("composer-input").press_sequentially("hel")
    indicator = bob.get_by_test_id("typing-indicator")
    expect(indicator).to_be_visible()
    expect(indicator).to_contain_text(f"{a_name} is typing")
    expect(alice.get_by_test_id("typing-indicator")).to_be_hidden()
    alice.get_by_test_id("composer-input").press("Enter")
    expect(messages_with(bob, "hel")).to_have_count(1)
    expect(indicator).to_be_hidden()
    # Typing that stops fades out by itself. (Typed slowly: the server passes
    # one typing frame per two seconds, and the message just went.)
    alice.get_by_test_id("composer-input").press_sequentially("again and again", delay=300)
    expect(indicator).to_be_visible()
    expect(indicator).to_be_hidden()


def test_the_last_member_is_asked_before_the_room_closes(new_page) -> None:
    page = new_page()
    register(page, new_person("last"))
    code = create_room(page)
    page.get_by_test_id("leave-room").click()
    dialog = page.get_by_test_id("leave-confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("the room and its messages will be deleted")
    page.get_by_test_id("leave-confirm-no").click()
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(re.compile(rf"/r/{code}$"))
    wait_online(page)

    page.get_by_test_id("leave-room").click()
    page.get_by_test_id("leave-confirm-yes").click()
    expect(page).to_have_url(re.compile(r"/lobby$"))
    expect(notice(page, "notice.leftRoom")).to_contain_text(code)
    page.get_by_test_id("join-code-input").fill(code)
    page.get_by_test_id("join-room-button").click()
    expect(page.get_by_test_id("join-code-input-error")).to_contain_text(code)


def test_with_others_present_leave_asks_nothing(new_page) -> None:
    alice, bob, *_ = two_in_a_room(new_page)
    bob.get_by_test_id("leave-room").click()
    expect(bob).to_have_url(re.compile(r"/lobby$"))
    expect(members(alice)).to_have_count(1)


def box_of(page: Page, testid: str) -> dict:
    box = page.get_by_test_id(testid).bounding_box()
    assert box is not None, testid
    return box


def test_on_a_phone_members_fold_out_and_targets_are_large(new_page) -> None:
    alice = new_page()
    bob = new_page(viewport=PHONE)
    a, b = new_person("alice"), new_person("bob")
    register(alice, a)
    register(bob, b)
    code = create_room(alice, "Phone")
    join_room(bob, code)

    listing = bob.get_by_test_id("member-list")
    toggle = bob.get_by_test_id("members-toggle")
    expect(listing).to_be_hidden()
    expect(bob.get_by_test_id("members-toggle-count")).to_have_text("2")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(listing).to_be_visible()
    expect(members(bob)).to_have_count(2)
    for name in (a.username, b.username):
        expect(listing.locator(f'[data-username="{name}"]')).to_be_visible()
    toggle.click()
    expect(listing).to_be_hidden()

    for testid in ("copy-code", "copy-link", "leave-room", "members-toggle"):
        box = box_of(bob, testid)
        assert box["height"] >= 44 and box["width"] >= 44, (testid, box)


def test_phone_landscape_keeps_the_composer_in_view(new_page) -> None:
    page = new_page(viewport=LANDSCAPE)
    register(page, new_person("side"))
    create_room(page)
    composer = page.get_by_test_id("composer-input")
    expect(composer).to_be_visible()
    box = box_of(page, "composer-input")
    assert box["y"] + box["height"] <= LANDSCAPE["height"], box
    covered = page.evaluate(
        """([x, y]) => !document.elementFromPoint(x, y).closest('[data-testid="composer"]')""",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert not covered
    send(page, "typed on its side")


def test_good_news_notices_go_away_errors_stay(new_page) -> None:
    page = new_page()
    register(page, new_person("notes"))
    create_room(page)
    created = notice(page, "notice.roomCreated")
    expect(created).to_have_count(0)

    page.goto("/r/ACDEFGHJ")
    closed = notice(page, "notice.roomClosed")
    expect(closed).to_be_visible()
    page.wait_for_timeout(9_000)  # past the self-dismiss delay of good news
    expect(closed).to_be_visible()
    closed.get_by_test_id("notice-dismiss").click()
    expect(closed).to_have_count(0)


def test_switching_language_keeps_the_room_name_in_the_tab(new_page) -> None:
    page = new_page()
    register(page, new_person("lang"))
    create_room(page, "Picnic")
    expect(page).to_have_title("Picnic · Sala")
    page.get_by_test_id("language-select").select_option("es")
    expect(page.get_by_test_id("leave-room")).to_have_text("Salir de la sala")
    expect(page).to_have_title("Picnic · Sala")


def test_an_invalid_code_says_only_that(new_page) -> None:
    page = new_page()
    register(page, new_person("typo"))
    page.goto("/r/!!")
    wait_ready(page)
    panel = page.get_by_test_id("room-closed")
    expect(panel.locator("h1")).to_have_text("Not a room code")
    expect(panel).not_to_contain_text("closed")
    expect(notice(page, "notice.roomClosed")).to_have_count(0)
    # Four characters of the alphabet are a code; three, or a look-alike, are not.
    page.goto("/r/ACD")
    expect(page.get_by_test_id("room-closed").locator("h1")).to_have_text("Not a room code")
    # The lobby checks a typed code the same way before asking the server.
    page.goto("/lobby")
    wait_ready(page)
    for typed in ("acd", "abcd"):
        page.get_by_test_id("join-code-input").fill(typed)
        page.get_by_test_id("join-room-button").click()
        expect(page.get_by_test_id("join-code-input-error")).to_contain_text("4 to 16 letters and digits")


def test_a_malformed_escape_shows_the_failure_view(new_page) -> None:
    page = new_page()
    register(page, new_person("escape"))
    page.goto("/r/%E0")
    wait_ready(page)
    expect(page.get_by_test_id("view-failed")).to_be_visible()
    page.goto("/lobby?code=http://x/r/%E0")
    wait_ready(page)
    expect(page.get_by_test_id("lobby")).to_be_visible()


def test_first_paint_is_in_the_visitors_language(new_page) -> None:
    page = new_page(locale="es-ES", accept_language="es-ES,es;q=0.9")
    held = []
    page.route("**/static/i18n/es.json", lambda route: held.append(route))
    page.goto("/", wait_until="commit")
    tagline = page.locator('footer [data-i18n="footer.tagline"]')
    expect(tagline).to_be_attached()
    while not held:
        page.wait_for_timeout(50)
    # The Spanish catalogue has not arrived: no English text is shown meanwhile.
    expect(tagline).to_be_hidden()
    held[0].continue_()
    wait_ready(page)
    expect(tagline).to_be_visible()
    expect(tagline).not_to_contain_text("rooms that last")


def test_password_rules_are_checked_early_and_server_words_shown(new_page) -> None:
    page = new_page()
    person = new_person("pw")
    page.goto("/register")
    wait_ready(page)
    page.get_by_test_id("register-email").fill(person.email)
    page.get_by_test_id("register-username").fill(person.username)
    error = page.get_by_test_id("register-password-error")
    for password, words in (
        ("aaaaaaaaaa", "one character repeated"),
        (f"my {person.username} pass", "must not contain your username"),
    ):
        page.get_by_test_id("register-password").fill(password)
        page.get_by_test_id("register-confirm").fill(password)
        page.get_by_test_id("register-submit").click()
        expect(error).to_contain_text(words)

    said = "The password is too easy to guess; choose another."
    page.route(
        "**/api/auth/register",
        lambda route: route.fulfill(
            status=422,
            json={"detail": [{"type": "password_guessable", "loc": ["body", "password"], "msg": said}]},
        ),
    )
    page.get_by_test_id("register-password").fill("plum Lantern river 42 quietly")
    page.get_by_test_id("register-confirm").fill("plum Lantern river 42 quietly")
    page.get_by_test_id("register-submit").click()
    expect(error).to_have_text(said)
