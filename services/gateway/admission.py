"""Bounds on one gateway: handshakes started per second, and per user and address sockets held, connects made, messages sent.

A user's sockets in one room meet on one replica (the edge hashes on the
room), so counting here bounds what one account can make a room's replica
hold or fan out, whatever number of tabs or scripts it opens. The limits are
per replica: a user spread over N replicas by N rooms gets N times them.

The handshake rate bounds everybody's connects together: when a replica
dies, its clients all reconnect to the others within a second, and each
connect costs a few milliseconds of the one event loop that also carries the
sockets already open (docs/capacity.md, "The reconnect storm").
"""

import math
import time
from dataclasses import dataclass, field

from services.gateway.closes import Close
from services.gateway.limits import TokenBucket
from services.gateway.settings import GatewaySettings

# How a 1013's reason tells the client when to come back (docs/protocol.md); the web client parses it.
RETRY_HINT = "retry_after_ms={}"


def retry_reason(text: str, seconds: float) -> str:
    """A close reason that carries the retry hint: ``text; retry_after_ms=N``."""
    # Rounded up: a client that waits exactly this long finds the token it was promised.
    return f"{text}; {RETRY_HINT.format(max(1, math.ceil(seconds * 1000)))}"


class Refused(Exception):
    """The socket is not admitted; ``code`` and ``reason`` go in its close frame."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class HandshakeGate:
    """The handshakes one replica starts per second, and, for each one beyond them, when to come back.

    A token bucket (``rate`` per second, ``burst`` at once) admits handshakes.
    A refused one is given the next free slot after those already promised,
    ``1 / rate`` apart, as its wait: a storm's refused clients come back
    spread over the time the bucket needs for them, not all in the same
    instant. No slot is promised more than ``max_wait`` ahead: past that
    the wait is ``max_wait``, and the clients' own jittered backoff spreads them.
    Nothing is kept per client or per socket.
    """

    __slots__ = ("_bucket", "_interval", "_max_wait", "_clock", "_promised", "seen")

    def __init__(self, rate: float, burst: int, max_wait: float, clock=time.monotonic) -> None:
        self._bucket = TokenBucket(rate, burst, clock)
        self._interval = 1 / rate
        self._max_wait = max_wait
        self._clock = clock
        # The latest slot promised to a refused handshake (monotonic seconds).
        self._promised = clock()
        # Handshakes asked for, admitted or not: the garbage collector's storm signal.
        self.seen = 0

    def admit(self) -> float | None:
        """None if this handshake may go on now, else the seconds to wait before trying again."""
        self.seen += 1
        if self._bucket.allow():
            return None
        now = self._clock()
        self._promised = min(max(self._promised, now) + self._interval, now + self._max_wait)
        return self._promised - now


@dataclass(slots=True)
class _UserRecord:
    sockets: int
    connects: TokenBucket
    # One budget for the messages of all the user's sockets on this replica.
    messages: TokenBucket


class Seat:
    """One admitted socket's place in its user's and its address's counts.

    Given back once, as soon as the socket's close is decided, so a client that
    reconnects the moment it reads the close frame finds its place free.
    """

    __slots__ = ("_admission", "_user_id", "_address", "messages")

    def __init__(self, admission: "Admission", user_id: str, address: str, messages: TokenBucket) -> None:
        self._admission: Admission | None = admission
        self._user_id = user_id
        self._address = address
        # One budget for the messages of all the user's sockets on this replica.
        self.messages = messages

    def release(self) -> None:
        if self._admission is not None:
            self._admission.release(self._user_id, self._address)
            self._admission = None


@dataclass(slots=True)
class Admission:
    settings: GatewaySettings
    _users: dict[str, _UserRecord] = field(default_factory=dict)
    _addresses: dict[str, int] = field(default_factory=dict)
    # User ids and addresses over the shared budget of unknown room codes, until when (monotonic seconds).
    _guessers: dict[str, float] = field(default_factory=dict)
    handshakes: HandshakeGate = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        # A client told to wait longer than half the leave grace could come back after its user was counted gone.
        self.handshakes = HandshakeGate(
            settings.handshake_rate_per_second, settings.handshake_burst, settings.leave_grace_seconds / 2
        )

    def guessing(self, user_id: str, address: str) -> bool:
        """Whether the user or the address spent its budget of unknown room codes and must wait."""
        now = time.monotonic()
        return any(self._guessers.get(who, 0.0) > now for who in (user_id, address))

    def block_guesses(self, user_id: str, address: str, seconds: int) -> None:
        until = time.monotonic() + seconds
        self._guessers[user_id] = self._guessers[address] = until

    def admit(self, user_id: str, address: str) -> Seat:
        """Count a new socket in, or raise Refused."""
        settings = self.settings
        record = self._users.get(user_id)
        if record is None:
            record = self._users[user_id] = _UserRecord(
                0,
                TokenBucket(settings.connects_per_user_per_minute / 60, settings.connects_per_user_per_minute),
                TokenBucket(settings.message_rate_per_user_per_second, settings.message_burst_per_user),
            )
        if record.sockets >= settings.max_sockets_per_user:
            raise Refused(Close.POLICY, f"at most {settings.max_sockets_per_user} sockets per user")
        if self._addresses.get(address, 0) >= settings.max_sockets_per_address:
            raise Refused(Close.POLICY, f"at most {settings.max_sockets_per_address} sockets per address")
        if not record.connects.allow():
            # The bucket gains a connect every 60 / N seconds: the hint is that, the longest the wait can be.
            wait = 60 / settings.connects_per_user_per_minute
            raise Refused(Close.TRY_AGAIN, retry_reason("connecting too often", wait))
        record.sockets += 1
        self._addresses[address] = self._addresses.get(address, 0) + 1
        return Seat(self, user_id, address, record.messages)

    def release(self, user_id: str, address: str) -> None:
        record = self._users.get(user_id)
        if record is not None:
            record.sockets -= 1
        left = self._addresses.get(address, 0) - 1
        if left > 0:
            self._addresses[address] = left
        else:
            self._addresses.pop(address, None)

    def prune(self) -> None:
        """Forget users with no socket whose connect budget has refilled: nothing about them is left to limit."""
        for user_id in [user for user, record in self._users.items() if not record.sockets and record.connects.full()]:
            del self._users[user_id]
        now = time.monotonic()
        for who in [who for who, until in self._guessers.items() if until <= now]:
            del self._guessers[who]

    @property
    def tracked_users(self) -> int:
        return len(self._users)
