"""The single-reader queue and flag each socket keeps."""

import asyncio

import pytest

from services.gateway.mailbox import Gate, Mailbox


async def test_items_come_out_in_order():
    mailbox: Mailbox[int] = Mailbox()
    for item in (1, 2, 3):
        mailbox.put_nowait(item)
    assert mailbox.qsize() == 3
    assert [await mailbox.get(), mailbox.get_nowait(), await mailbox.get()] == [1, 2, 3]
    assert mailbox.empty()


async def test_get_waits_for_the_next_item():
    mailbox: Mailbox[str] = Mailbox()
    reader = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    mailbox.put_nowait("hello")
    assert await reader == "hello"


async def test_a_cancelled_reader_leaves_the_mailbox_usable():
    mailbox: Mailbox[str] = Mailbox()
    reader = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    mailbox.put_nowait("after")
    assert await mailbox.get() == "after"


async def test_a_second_reader_is_refused():
    mailbox: Mailbox[str] = Mailbox()
    first = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await mailbox.get()
    mailbox.put_nowait("one")
    assert await first == "one"


def test_get_nowait_on_empty_raises_queue_empty():
    with pytest.raises(asyncio.QueueEmpty):
        Mailbox().get_nowait()


async def test_gate_starts_open_and_blocks_while_shut():
    gate = Gate()
    assert gate.is_set()
    await gate.wait()
    gate.clear()
    waiters = [asyncio.create_task(gate.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    gate.set()
    await asyncio.gather(*waiters)
    assert gate.is_set()


async def test_a_cancelled_gate_waiter_is_forgotten():
    gate = Gate()
    gate.clear()
    waiter = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not gate._waiters
    gate.set()


def test_drop_leading_stops_at_the_first_item_to_keep():
    mailbox: Mailbox[int] = Mailbox()
    for item in (1, 2, 5, 1, 7):
        mailbox.put_nowait(item)
    mailbox.drop_leading(lambda item: item < 3)
    assert list(mailbox) == [5, 1, 7]
    mailbox.drop_leading(lambda item: item < 10)
    assert mailbox.empty() and mailbox.qsize() == 0 and list(mailbox) == []
    mailbox.drop_leading(lambda item: True)
    assert mailbox.empty()
