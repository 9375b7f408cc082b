"""Room codes: readable alphabet, normalisation, enough space."""

import pytest

from services.common.room_codes import ALPHABET, new_code, normalize


def test_alphabet_has_no_look_alikes():
    for confusable in "0O1IL5S2Z8B":
        assert confusable not in ALPHABET
    assert "".join(sorted(set(ALPHABET), key=ALPHABET.index)) == ALPHABET
    assert all(ch.isupper() or ch.isdigit() for ch in ALPHABET)


def test_codes_use_only_the_alphabet_and_rarely_repeat():
    codes = [new_code(6) for _ in range(5000)]
    assert all(len(code) == 6 and set(code) <= set(ALPHABET) for code in codes)
    assert len(set(codes)) > 4990


@pytest.mark.parametrize(("raw", "expected"), [("acd34k", "ACD34K"), (" xyt679 ", "XYT679"), ("ACDEFG", "ACDEFG")])
def test_normalize_is_case_insensitive(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "A" * 17, "ABC0OO", "ABC-12", "ÁBCDEF", "AB CD"])
def test_normalize_rejects_what_cannot_be_a_code(raw):
    assert normalize(raw) is None
