"""Accessibility: axe-core's WCAG 2.1 A/AA rules on each kind of page, and keyboard use.

axe-core is vendored under tests/e2e/vendor (test only). It is injected as an
inline script, so these pages are opened with the CSP bypassed; every other
test runs under the edge's strict CSP.
"""

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import PHONE
from tests.e2e.helpers import (
    create_room,
    join_room,
    new_person,
    register,
    send,
    submit,
    wait_ready,
)

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page: Page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, { runOnly: { type: 'tag', values: tags } });
            return result.violations.map((v) => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
            }));
        }""",
        TAGS,
    )


def assert_accessible(page: Page, what: str) -> None:
    found = violations(page)
    assert not found, f"{what}: " + "\n".join(
        f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in found
    )


def test_pages_pass_wcag_aa_rules(new_page) -> None:
    page = new_page(bypass_csp=True)
    for path in ["/", "/about", "/how-rooms-work", "/privacy", "/login", "/nowhere"]:
        page.goto(path)
        wait_ready(page)
        assert_accessible(page, path)

    # A form showing its errors.
    page.goto("/register")
    wait_ready(page)
    page.get_by_test_id("register-email").fill("not-an-email")
    page.get_by_test_id("register-password").fill("short")
    page.get_by_test_id("register-submit").click()
    expect(page.get_by_test_id("register-email-error")).to_be_visible()
    assert_accessible(page, "/register with errors")

    register(page, new_person("lena"))
    assert_accessible(page, "/lobby")
    page.get_by_test_id("join-code-input").fill("ZZZZZZ")
    page.get_by_test_id("join-room-button").click()
    expect(page.get_by_test_id("join-code-input-error")).to_be_visible()
    assert_accessible(page, "/lobby with a join error")

    # A room with messages, own and others', join notices, at both widths.
    other = new_page()
    register(other, new_person("milo"))
    code = create_room(page, "Accessible room")
    join_room(other, code)
    send(page, "A message of mine")
    send(other, "A message of someone else")
    expect(page.get_by_test_id("message")).to_have_count(2)
    assert_accessible(page, "room (desktop)")
    page.set_viewport_size(PHONE)
    assert_accessible(page, "room (phone)")

    spanish = new_page(locale="es-ES", bypass_csp=True)
    spanish.goto("/")
    wait_ready(spanish)
    assert_accessible(spanish, "/ in Spanish")


def test_the_site_works_with_the_keyboard(new_page) -> None:
    page = new_page()
    page.goto("/")
    wait_ready(page)

    # The first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()

    # Log in with the keyboard only.
    person = new_person("noor")
    page.goto("/register")
    wait_ready(page)
    page.get_by_test_id("register-email").focus()
    page.keyboard.type(person.email)
    page.keyboard.press("Tab")
    page.keyboard.type(person.username)
    page.keyboard.press("Tab")
    page.keyboard.type(person.password)
    page.keyboard.press("Tab")
    page.keyboard.type(person.password)
    expect(page.get_by_test_id("register-confirm")).to_be_focused()
    submit(
        page,
        "register-submit",
        "register-form-error",
        page.locator('[data-testid="notice"][data-key="notice.accountCreated"]'),
    )
    expect(page).to_have_url(re.compile(r"/lobby$"))

    # Create a room from the keyboard and type into it; focus lands on the composer.
    page.get_by_test_id("room-name-input").focus()
    page.keyboard.type("Keyboard room")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/r/[A-Z0-9]+$"))
    expect(page.get_by_test_id("composer-input")).to_be_focused()
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Enter")
    mine = page.locator('[data-testid="message"][data-own="true"]')
    expect(mine).to_have_count(1)
    expect(mine).to_have_attribute("data-status", "sent")

    # Focus is visible: a focused button has an outline.
    page.get_by_test_id("copy-code").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    outline = page.get_by_test_id("copy-code").evaluate(
        "el => getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).outlineWidth"
    )
    assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
