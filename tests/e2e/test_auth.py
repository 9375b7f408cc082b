"""Accounts in the browser: register, log out, log in, errors on their fields, members-only pages."""

import re

from playwright.sync_api import expect

from tests.e2e.helpers import (
    create_room,
    log_in,
    log_out,
    members,
    new_person,
    notice,
    register,
    register_by_api,
    send,
    submit,
    wait_ready,
)


def test_register_log_out_log_in_and_field_errors(new_page) -> None:
    page = new_page()
    person = new_person("dora")
    register(page, person)
    log_out(page)
    expect(page.get_by_test_id("nav-user")).to_be_hidden()

    page.get_by_test_id("nav-login").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    log_in(page, person)
    expect(page).to_have_url(re.compile(r"/lobby$"))
    expect(notice(page, "notice.welcomeBack")).to_contain_text(person.username)
    expect(page.get_by_test_id("nav-username")).to_have_text(person.username)
    log_out(page)

    # A wrong password: one message for the form, nobody signed in.
    page.goto("/login")
    page.get_by_test_id("login-email").fill(person.email)
    page.get_by_test_id("login-password").fill("not the password")
    wrong = page.get_by_test_id("login-form-error").and_(
        page.locator('[data-i18n="login.error.invalid"]')
    )
    submit(page, "login-submit", "login-form-error", wrong)
    expect(page).to_have_url(re.compile(r"/login$"))

    # The same email again: the server's 409 is shown next to the email field.
    page.goto("/register")
    wait_ready(page)
    page.get_by_test_id("register-email").fill(person.email.upper())
    page.get_by_test_id("register-username").fill(new_person("other").username)
    page.get_by_test_id("register-password").fill(person.password)
    page.get_by_test_id("register-confirm").fill(person.password)
    email_error = page.get_by_test_id("register-email-error")
    submit(page, "register-submit", "register-form-error", email_error)
    expect(email_error).to_contain_text("already exists")
    expect(page.get_by_test_id("register-email")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.get_by_test_id("register-email")).to_be_focused()
    expect(page.get_by_test_id("register-username-error")).to_be_hidden()

    # A taken username: the error goes to the username field.
    page.get_by_test_id("register-email").fill(new_person("other").email)
    page.get_by_test_id("register-username").fill(person.username)
    submit(
        page,
        "register-submit",
        "register-form-error",
        page.get_by_test_id("register-username-error"),
    )
    expect(page.get_by_test_id("register-email-error")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/register$"))


def test_register_form_checks_before_sending(new_page) -> None:
    page = new_page()
    page.goto("/register")
    wait_ready(page)
    page.get_by_test_id("register-email").fill("not-an-email")
    page.get_by_test_id("register-username").fill("ab")
    page.get_by_test_id("register-password").fill("short")
    expect(page.get_by_test_id("password-strength")).to_have_attribute(
        "data-score", "0"
    )
    page.get_by_test_id("register-confirm").fill("different")
    page.get_by_test_id("register-submit").click()
    for field in [
        "register-email",
        "register-username",
        "register-password",
        "register-confirm",
    ]:
        expect(page.get_by_test_id(f"{field}-error")).to_be_visible()
        expect(page.get_by_test_id(field)).to_have_attribute("aria-invalid", "true")
    # The strength hint follows what is typed.
    page.get_by_test_id("register-password").fill("plum Lantern river 42 quietly")
    expect(page.get_by_test_id("password-strength")).to_have_attribute(
        "data-score", "4"
    )
    expect(page.get_by_test_id("password-strength-label")).to_have_text("Strong")


def test_anonymous_visitor_is_sent_to_login_and_back(new_page) -> None:
    # Members-only entries are shown locked.
    visitor = new_page()
    visitor.goto("/")
    wait_ready(visitor)
    expect(visitor.get_by_test_id("nav-lobby")).to_have_attribute("data-locked", "true")
    expect(visitor.get_by_test_id("entry-lobby")).to_have_attribute(
        "data-locked", "true"
    )

    # /lobby: to the login page with a notice saying why, then back.
    visitor.goto("/lobby")
    expect(visitor).to_have_url(re.compile(r"/login\?next=%2Flobby$"))
    expect(notice(visitor, "notice.loginForLobby")).to_be_visible()
    person = new_person("erin")
    register_by_api(visitor, person)
    log_in(visitor, person)
    expect(visitor).to_have_url(re.compile(r"/lobby$"))
    expect(visitor.get_by_test_id("lobby")).to_be_visible()
    expect(visitor.get_by_test_id("nav-lobby")).to_have_attribute(
        "data-locked", "false"
    )

    # /r/CODE: a room someone is in; after logging in the visitor is in it.
    host = new_page()
    host_person = new_person("host")
    register(host, host_person)
    code = create_room(host)
    guest = new_page()
    guest.goto(f"/r/{code}")
    expect(guest).to_have_url(re.compile(rf"/login\?next=%2Fr%2F{code}$"))
    expect(notice(guest, "notice.loginForRoom")).to_contain_text(code)
    guest_person = new_person("guest")
    register_by_api(guest, guest_person)
    log_in(guest, guest_person)
    expect(guest).to_have_url(re.compile(rf"/r/{code}$"))
    expect(guest.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "online"
    )
    expect(members(guest)).to_have_count(2)
    expect(guest.get_by_test_id("member-list")).to_contain_text(host_person.username)


def test_next_parameter_cannot_leave_the_site(new_page) -> None:
    page = new_page()
    person = new_person("fay")
    register_by_api(page, person)
    page.goto("/login?next=//example.com/steal")
    wait_ready(page)
    log_in(page, person)
    expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/lobby$"))


def test_server_validation_errors_land_on_their_field(new_page) -> None:
    page = new_page()
    page.goto("/register")
    wait_ready(page)
    # Passes the form's own check, fails the server's (422, detail[].loc = ["body", "email"]).
    page.get_by_test_id("register-email").fill(
        f"a..b-{new_person().username}@example.com"
    )
    page.get_by_test_id("register-username").fill(new_person().username)
    page.get_by_test_id("register-password").fill("correct horse battery staple")
    page.get_by_test_id("register-confirm").fill("correct horse battery staple")
    submit(
        page,
        "register-submit",
        "register-form-error",
        page.get_by_test_id("register-email-error"),
    )
    expect(page.get_by_test_id("register-email")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.get_by_test_id("register-form-error")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/register$"))

    # One of the most common passwords: refused by the server, shown on the password field.
    page.get_by_test_id("register-email").fill(new_person("jade").email)
    page.get_by_test_id("register-password").fill("iloveyou")
    page.get_by_test_id("register-confirm").fill("iloveyou")
    password_error = page.get_by_test_id("register-password-error")
    submit(page, "register-submit", "register-form-error", password_error)
    expect(password_error).to_contain_text("most common")
    expect(page.get_by_test_id("register-email-error")).to_be_hidden()


def test_logging_out_in_one_tab_sends_the_other_tab_to_login(new_page, browser) -> None:
    room_tab = new_page()
    person = new_person("hana")
    register(room_tab, person)
    code = create_room(room_tab)
    other_tab = room_tab.context.new_page()
    other_tab.goto("/lobby")
    wait_ready(other_tab)
    other_tab.get_by_test_id("logout-button").click()
    expect(notice(other_tab, "notice.loggedOut")).to_be_visible()

    # The room tab's socket is closed with 4001: it goes to login, saying why.
    expect(room_tab).to_have_url(re.compile(rf"/login\?next=%2Fr%2F{code}$"))
    expect(notice(room_tab, "notice.loggedOutElsewhere")).to_be_visible()
    expect(room_tab.get_by_test_id("nav-login")).to_be_visible()


def test_an_expired_access_cookie_is_renewed_from_the_refresh_cookie(new_page) -> None:
    host, page = new_page(), new_page()
    register(host, new_person("host"))
    code = create_room(host)
    person = new_person("kai")
    register(page, person)
    page.goto(f"/r/{code}")
    expect(page.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "online"
    )
    names = {cookie["name"] for cookie in page.context.cookies()}
    assert {"chat_session", "chat_refresh"} <= names, names

    # The short-lived access cookie is gone (as when it expires) and the socket
    # drops: the page gets a new access cookie from the refresh cookie and
    # reconnects, instead of sending the person away.
    page.context.clear_cookies(name="chat_session")
    page.evaluate("window.__sala.debugDropSocket()")
    expect(
        page.locator('[data-testid="room-event"][data-type="reconnected"]')
    ).to_have_count(1)
    expect(page.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "online"
    )
    expect(page).to_have_url(re.compile(rf"/r/{code}$"))
    send(page, "still signed in")

    page.context.clear_cookies(name="chat_session")
    page.goto("/lobby")
    wait_ready(page)
    expect(page).to_have_url(re.compile(r"/lobby$"))
    expect(page.get_by_test_id("nav-username")).to_have_text(person.username)

    # Without the refresh cookie too, the session is over: to the login page.
    page.context.clear_cookies()
    page.goto("/lobby")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Flobby$"))


def test_back_button_after_logout_shows_nothing_private(new_page) -> None:
    page = new_page()
    person = new_person("erin")
    register(page, person)
    create_room(page, "Private plans")
    send(page, "a secret plan")
    log_out(page)
    page.go_back()
    # Whatever the history says, the room's content is gone and the visitor is sent to log in.
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_text("a secret plan")).to_have_count(0)
    expect(page.get_by_text("Private plans")).to_have_count(0)
    expect(page.get_by_test_id("nav-username")).to_be_hidden()
