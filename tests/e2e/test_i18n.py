"""English and Spanish: complete catalogues, language from the browser, the switcher."""

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.helpers import (
    create_room,
    new_person,
    notice,
    send,
    submit,
    wait_ready,
)

WEB = Path(__file__).resolve().parents[2] / "web"
CATALOGUES = WEB / "static" / "i18n"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def load(lang: str) -> dict:
    return json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))


def placeholders(value: object) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    en, es = load("en"), load("es")
    assert sorted(en) == sorted(es)
    for key, value in en.items():
        assert value and es[key], key
        assert isinstance(value, dict) == isinstance(es[key], dict), key
        if isinstance(value, dict):
            assert "other" in value and "other" in es[key], key
        assert placeholders(value) == placeholders(es[key]), key


def test_every_key_the_ui_uses_is_in_the_catalogue() -> None:
    en = load("en")
    prefixes = {key.split(".", 1)[0] for key in en}
    used = set()
    for path in [WEB / "index.html", *(WEB / "static" / "js").rglob("*.js")]:
        text = path.read_text(encoding="utf-8")
        for literal in re.findall(r"""['"]([a-zA-Z]+(?:\.[a-zA-Z0-9_]+)+)['"]""", text):
            if literal.split(".", 1)[0] in prefixes:
                used.add(literal)
        for attr_map in re.findall(r'data-i18n-attrs="([^"]+)"', text):
            used.update(part.split(":", 1)[1] for part in attr_map.split(";"))
    missing = sorted(key for key in used if key not in en)
    assert not missing, missing
    assert len(used) > 100


def test_spanish_from_the_browser_language_and_the_switcher(new_page) -> None:
    page = new_page(locale="es-ES", accept_language="es-ES,es;q=0.9")
    page.goto("/")
    wait_ready(page)
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_test_id("language-select")).to_have_value("es")
    expect(page.get_by_test_id("nav-login")).to_have_text("Iniciar sesión")
    expect(page.get_by_test_id("nav-register")).to_have_text("Crear cuenta")
    expect(page.locator("h1")).to_have_text(
        "Abre una sala. Comparte el código. Conversa."
    )

    # The whole journey in Spanish: forms, notices, the room.
    page.goto("/lobby")
    expect(notice(page, "notice.loginForLobby")).to_contain_text("Inicia sesión")
    page.get_by_test_id("to-register").click()
    expect(page.get_by_label("Correo electrónico")).to_be_visible()
    expect(page.get_by_label("Confirma la contraseña")).to_be_visible()
    person = new_person("gael")
    page.get_by_test_id("register-email").fill(person.email)
    page.get_by_test_id("register-username").fill(person.username)
    page.get_by_test_id("register-password").fill("ab")
    expect(page.get_by_test_id("password-strength-label")).to_have_text(
        "Demasiado corta"
    )
    page.get_by_test_id("register-submit").click()
    expect(page.get_by_test_id("register-password-error")).to_have_text(
        "La contraseña debe tener entre 8 y 128 caracteres."
    )
    page.get_by_test_id("register-password").fill(person.password)
    page.get_by_test_id("register-confirm").fill(person.password)
    submit(
        page,
        "register-submit",
        "register-form-error",
        notice(page, "notice.accountCreated"),
    )
    expect(notice(page, "notice.accountCreated")).to_contain_text("Cuenta creada")
    expect(page).to_have_url(re.compile(r"/lobby$"))
    expect(page.locator("h1")).to_have_text("Vestíbulo")
    page.get_by_test_id("join-code-input").fill("ACDEFGHJ")
    page.get_by_test_id("join-room-button").click()
    expect(page.get_by_test_id("join-code-input-error")).to_contain_text(
        "No hay ninguna sala abierta"
    )

    create_room(page)
    expect(page.get_by_test_id("connection-status")).to_have_text("Conectado")
    expect(page.get_by_test_id("send-button")).to_have_text("Enviar")
    expect(page.get_by_test_id("composer-input")).to_have_attribute(
        "placeholder", "Escribe un mensaje…"
    )
    send(page, "hola a todos")
    expect(page.locator('[data-testid="room-event"][data-type="join"]')).to_have_text(
        re.compile("Has entrado")
    )
    untranslated = page.evaluate(
        "[...document.querySelectorAll('[data-i18n]')].filter(e => e.textContent === e.dataset.i18n).length"
    )
    assert untranslated == 0

    # The switcher changes every string at once and is remembered.
    page.get_by_test_id("language-select").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("connection-status")).to_have_text("Connected")
    expect(page.get_by_test_id("logout-button")).to_have_text("Log out")
    expect(page.get_by_test_id("send-button")).to_have_text("Send")
    page.goto("/about")
    wait_ready(page)
    expect(page.locator("h1")).to_have_text("About Sala")
    page.get_by_test_id("language-select").select_option("es")
    expect(page.locator("h1")).to_have_text("Acerca de Sala")
