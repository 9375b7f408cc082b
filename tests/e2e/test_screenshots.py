"""Screenshots of the lobby and of a room with messages, at desktop and phone widths.

They land in tests/e2e/artifacts/ (git-ignored) for a person to look at; the
test also checks that nothing sticks out sideways at 360 px.
"""

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.helpers import (
    create_room,
    join_room,
    new_person,
    register,
    send,
    wait_online,
)

SIZES = {"desktop": DESKTOP, "phone": PHONE}


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the window"


@pytest.mark.parametrize("size", list(SIZES))
def test_screenshots_of_lobby_and_room(new_page, artifacts, size: str) -> None:
    viewport = SIZES[size]
    alice, bob = new_page(viewport=viewport), new_page(viewport=viewport)
    register(alice, new_person("alice"))
    register(bob, new_person("bob"))

    expect(alice.get_by_test_id("lobby")).to_be_visible()
    no_sideways_scroll(alice)
    alice.screenshot(path=str(artifacts / f"lobby-{size}.png"), full_page=True)

    code = create_room(alice, "Weekend hike")
    join_room(bob, code)
    send(alice, "Morning! Are we still on for Saturday?")
    send(bob, "Yes. I checked the forecast: sunny until 3 pm, showers later.")
    send(bob, "Shall we meet at the station at 8?")
    send(alice, "8 works. I'll bring the map and some snacks.\nAnyone else coming?")
    send(
        bob, "A long one to see wrapping: " + "supercalifragilisticexpialidocious " * 3
    )
    wait_online(alice)
    expect(alice.get_by_test_id("message")).to_have_count(5)
    no_sideways_scroll(alice)
    alice.screenshot(path=str(artifacts / f"room-{size}.png"))
    no_sideways_scroll(bob)
    bob.screenshot(path=str(artifacts / f"room-{size}-other.png"))
    assert (artifacts / f"room-{size}.png").stat().st_size > 10_000
