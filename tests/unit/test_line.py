"""The command line's encoding and its recovery from a forgotten script, through a fake of its own ``run``."""

from collections.abc import Sequence
from types import SimpleNamespace

import hiredis
import pytest
from redis.exceptions import NoScriptError, ResponseError

from services.gateway.line import Command, CommandLine, pack

SCRIPT = SimpleNamespace(sha="5ca1ab1e", script="return ARGV[1]")


def test_commands_are_packed_as_resp_arrays_of_bulk_strings():
    packed = pack([("SET", "k", b"\xc3\xa9 x"), ("EVALSHA", "5ca1ab1e", 1, "k", 42)])
    assert packed == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\xc3\xa9 x\r\n"
        b"*5\r\n$7\r\nEVALSHA\r\n$8\r\n5ca1ab1e\r\n$1\r\n1\r\n$1\r\nk\r\n$2\r\n42\r\n"
    )
    # What a server reads back out of it, argument for argument.
    reader = hiredis.Reader()
    reader.feed(packed)
    assert reader.gets() == [b"SET", b"k", b"\xc3\xa9 x"]
    assert reader.gets() == [b"EVALSHA", b"5ca1ab1e", b"1", b"k", b"42"]


class ForgetfulServer(CommandLine):
    """Answers NOSCRIPT for the calls whose argument is in ``forgotten`` until the script is loaded."""

    def __init__(self, forgotten: set[int], load_reply: object = "5ca1ab1e") -> None:
        super().__init__(SimpleNamespace())
        self.forgotten = forgotten
        self.load_reply = load_reply
        self.batches: list[list[Command]] = []

    async def run(self, commands: Sequence[Command]) -> list[object]:
        self.batches.append(list(commands))
        replies: list[object] = []
        for command in commands:
            if command[0] == "SCRIPT":
                self.forgotten = set()
                replies.append(self.load_reply)
            elif command[-1] in self.forgotten:
                replies.append(NoScriptError("No matching script."))
            else:
                replies.append(f"ran {command[-1]}")
        return replies


async def test_after_noscript_the_script_is_loaded_once_and_only_the_refused_calls_run_again():
    line = ForgetfulServer(forgotten={1, 3})
    results = await line.eval_many(SCRIPT, [(["k"], [n]) for n in range(5)])
    assert results == [f"ran {n}" for n in range(5)]
    first, load, again = line.batches
    assert [command[-1] for command in first] == [0, 1, 2, 3, 4]
    assert load == [("SCRIPT", "LOAD", SCRIPT.script)]
    assert again == [("EVALSHA", SCRIPT.sha, 1, "k", 1), ("EVALSHA", SCRIPT.sha, 1, "k", 3)]


async def test_a_batch_the_server_knows_the_script_for_is_one_round_trip():
    line = ForgetfulServer(forgotten=set())
    assert await line.eval_many(SCRIPT, [(["k"], [7])]) == ["ran 7"]
    assert line.batches == [[("EVALSHA", SCRIPT.sha, 1, "k", 7)]]


async def test_a_script_the_server_refuses_to_load_fails_the_batch():
    line = ForgetfulServer(forgotten={0}, load_reply=ResponseError("OOM command not allowed"))
    with pytest.raises(ResponseError):
        await line.eval_many(SCRIPT, [(["k"], [0])])
