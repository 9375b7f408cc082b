"""Password rules and the bound on concurrent hashing, as pure logic (no servers)."""

import asyncio
import threading

import pytest

from services.auth.passwords import HasherBusy, HashSlots, PasswordHasher, password_problem


@pytest.mark.parametrize(
    ("password", "username", "email"),
    [
        ("aaaaaaaa", "someone", "x@example.com"),
        ("ÄÄÄÄÄÄÄÄÄ", "someone", "x@example.com"),
        ("Alice_Smith", "alice_smith", "x@example.com"),
        ("my alice_smith pw", "Alice_Smith", "x@example.com"),
        ("bob.jones", "someone", "Bob.Jones@example.com"),
        ("xx BOB.JONES 2024", "someone", "bob.jones@example.com"),
        ("love carol!!", "someone", "carol+chat@example.com"),
        ("jo", "someone", "jo@example.com"),
    ],
)
def test_guessable_passwords_are_refused(password, username, email):
    assert password_problem(password, username, email)


@pytest.mark.parametrize(
    ("password", "username", "email"),
    [
        ("correct horse battery", "alice", "alice@example.com"),
        ("aaaaaaab", "someone", "x@example.com"),
        # A one- or two-letter local part is refused only whole: "jo" inside a password is no giveaway.
        ("join the project", "someone", "jo@example.com"),
        ("example.com is my site", "someone", "x@example.com"),
    ],
)
def test_other_passwords_pass(password, username, email):
    assert password_problem(password, username, email) is None


def test_the_problem_names_what_is_wrong():
    assert "username" in password_problem("xalicex1", "alice", "z@example.com")
    assert "email" in password_problem("xcarolx1", "alice", "carol@example.com")
    assert "single character" in password_problem("zzzzzzzz", "alice", "z@example.com")


async def _blocked(slots: HashSlots, release: threading.Event) -> asyncio.Task:
    """A task holding one slot until ``release`` is set."""
    task = asyncio.create_task(slots.run(lambda: release.wait(10) and "done"))
    await asyncio.sleep(0)
    return task


async def test_no_more_than_the_slots_run_at_once_and_the_excess_is_refused():
    slots, release = HashSlots(concurrency=2, wait_seconds=0.05), threading.Event()
    first, second = await _blocked(slots, release), await _blocked(slots, release)
    with pytest.raises(HasherBusy):
        await slots.run(lambda: "never runs")
    release.set()
    assert await first == await second == "done"
    assert await slots.run(lambda: "ran") == "ran"
    slots.close()


async def test_a_caller_that_gives_up_keeps_its_slot_until_the_computation_ends():
    """A client that disconnects must not let another computation start next to the one still running."""
    slots, release = HashSlots(concurrency=1, wait_seconds=0.5), threading.Event()
    abandoned = await _blocked(slots, release)
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    with pytest.raises(HasherBusy):
        await slots.run(lambda: "never runs")
    release.set()
    assert await slots.run(lambda: "ran") == "ran"
    slots.close()


async def test_hasher_verifies_and_refuses_through_its_slots():
    hasher = PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1, concurrency=1, wait_seconds=5)
    stored = await hasher.hash("correct horse battery")
    assert (await hasher.verify("correct horse battery", stored))[0] is True
    assert (await hasher.verify("wrong", stored))[0] is False
    assert await hasher.verify("anything", None) == (False, None)
    hasher.close()
