"""The close-code and error-code catalogue, docs/protocol.md and the web client agree, both ways."""

import re
from pathlib import Path

from services.gateway.closes import Close, ErrorCode

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
CLIENT_MODULES = sorted((ROOT / "web" / "static" / "js").rglob("*.js"))

# Codes a browser reports locally and that never travel in a close frame (RFC 6455, 7.4.1).
BROWSER_ONLY = {1005: "no status", 1006: "abnormal closure", 1015: "TLS failure"}
# Codes the client may name although the gateway never chooses them: the browser's own close when a
# page goes away, and the ASGI server's answer to an unhandled error.
NOT_THE_GATEWAYS = {1001: "going away", 1011: "internal error"}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []


def _table(markdown: str, header: str) -> list[list[str]] | None:
    """The rows of the first table whose first column is headed ``header``, or None if there is none."""
    lines = markdown.splitlines()
    for index, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0].strip("`").lower() == header:
            rows = []
            for row in lines[index + 2 :]:
                if not _cells(row):
                    break
                rows.append(_cells(row))
            return rows
    return None


def documented_close_codes() -> set[int]:
    rows = _table(PROTOCOL, "close code")
    assert rows, "docs/protocol.md has a table headed 'close code'"
    return {int(number) for row in rows for number in re.findall(r"\b\d{4}\b", row[0])}


def documented_error_codes() -> set[str]:
    """The error table's first column if there is one, else the codes named in the ``error`` frame's item."""
    rows = _table(PROTOCOL, "error code")
    if rows is not None:
        return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row[0])}
    item = re.search(r"^- `error` .*?(?=^- |^$|\Z)", PROTOCOL, re.MULTILINE | re.DOTALL)
    assert item, "docs/protocol.md describes the error frame"
    return set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", item.group(0)))


def client_close_map() -> dict[str, int]:
    """The web client's ``CLOSE`` table: name → code."""
    for module in CLIENT_MODULES:
        found = re.search(r"export const CLOSE = \{(.*?)\};", module.read_text(), re.DOTALL)
        if found:
            return {name: int(code) for name, code in re.findall(r"(\w+):\s*(\d+)", found.group(1))}
    raise AssertionError("no module of web/static/js exports the CLOSE table")


def client_reactions() -> set[int]:
    """Every close code the client compares a close event's code with, by name or by number."""
    names = client_close_map()
    reacted: set[int] = set()
    for module in CLIENT_MODULES:
        for operand in re.findall(r"\bcode\s*[!=]==?\s*(CLOSE\.\w+|\d+)", module.read_text()):
            reacted.add(int(operand) if operand.isdigit() else names[operand.removeprefix("CLOSE.")])
    return reacted


def test_every_close_code_of_the_catalogue_is_documented():
    missing = {int(code) for code in Close} - documented_close_codes()
    assert not missing, f"close codes missing from docs/protocol.md's table: {sorted(missing)}"


def test_every_documented_close_code_is_in_the_catalogue():
    unknown = documented_close_codes() - {int(code) for code in Close}
    assert not unknown, f"docs/protocol.md documents close codes the gateway does not have: {sorted(unknown)}"


def test_every_error_code_of_the_catalogue_is_documented():
    missing = {str(code) for code in ErrorCode} - documented_error_codes()
    assert not missing, f"error codes missing from docs/protocol.md: {sorted(missing)}"


def test_every_documented_error_code_is_in_the_catalogue():
    unknown = documented_error_codes() - {str(code) for code in ErrorCode}
    assert not unknown, f"docs/protocol.md documents error codes the gateway does not have: {sorted(unknown)}"


def test_the_web_client_names_every_close_code_of_the_catalogue():
    missing = {int(code) for code in Close} - set(client_close_map().values())
    assert not missing, f"close codes the web client's CLOSE table lacks: {sorted(missing)}"


def test_the_web_client_names_no_close_code_the_gateway_does_not_send():
    foreign = set(client_close_map().values()) - {int(code) for code in Close} - NOT_THE_GATEWAYS.keys()
    assert not foreign, f"the web client's CLOSE table has codes outside the catalogue: {sorted(foreign)}"


def test_every_close_code_the_client_reacts_to_is_in_the_catalogue():
    reacted = client_reactions()
    assert reacted, "the client's close handling was found"
    unknown = reacted - {int(code) for code in Close} - BROWSER_ONLY.keys()
    assert not unknown, f"the web client reacts to close codes the gateway never sends: {sorted(unknown)}"


def test_codes_are_unique():
    assert len({int(code) for code in Close}) == len(Close)
    assert len({str(code) for code in ErrorCode}) == len(ErrorCode)
