"""This gateway's side of presence: registering sockets, their leaves, and its retirement (heartbeat: ``liveness``).

A socket that goes away without an explicit leave starts its user's leave
grace (``SALA_LEAVE_GRACE_SECONDS``); an explicit leave (the ``leave`` frame,
a logout) takes effect at once. A leave that Redis could not take is queued
and recorded by the keep-alive duty once Redis answers again, so none is lost.
"""

import logging
from collections import deque
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster

from services.common.clock import utc_now_iso
from services.common.reaper import index_grace
from services.common.redis_schema import GATEWAYS, Scripts, gateway_rooms_key, room_key
from services.common.tokens import Principal
from services.gateway.line import Command, Commands, raise_first_error
from services.gateway.timeline import EventId, History, joined_history

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Joined:
    event_id: str
    # The present users' names as a JSON array, ready to go in the welcome as is.
    members_json: str
    name: str | None
    history: History


class Presence:
    def __init__(
        self,
        redis: Redis | RedisCluster,
        commands: Commands,
        scripts: Scripts,
        gateway_id: str,
        leave_grace_seconds: float,
        history_max: int,
    ) -> None:
        self._redis = redis
        # Joins and leaves go on the gateway's command line (one server) or through the cluster client.
        self._commands = commands
        self._scripts = scripts
        # Replaced when the gateway learns it was presumed dead: its old sockets are being reaped under the old id.
        self.gateway_id = gateway_id
        self._grace_ms = int(leave_grace_seconds * 1000)
        self._history_max = history_max
        # (code, conn id, explicit) of leaves Redis could not take yet, oldest first.
        self.unrecorded: deque[tuple[str, str, bool]] = deque()

    def index(self, code: str) -> tuple[Command, str]:
        """The command that puts the room in this gateway's rooms set, for a batch of the caller's (one round
        trip fewer for a connect), and the gateway id it goes under, which the socket's ``join`` must then be given.
        """
        return ("SADD", gateway_rooms_key(self.gateway_id), code), self.gateway_id

    async def join(
        self,
        code: str,
        conn_id: str,
        principal: Principal,
        since: EventId | None,
        latest: int,
        indexed_as: str | None = None,
    ) -> Joined | None:
        """Register a socket and read the history it starts with (the ``latest`` events, or those after
        ``since``) in the same round trip; None if the room is not live.

        The room goes in the gateway's rooms set first (here, unless ``index``
        put it there under ``indexed_as``), so that if this gateway dies the
        reaper finds every socket it registered.
        """
        gateway_id = indexed_as
        if gateway_id is None:
            command, gateway_id = self.index(code)
            raise_first_error(await self._commands.run([command]))
        args = [conn_id, principal.user_id, principal.username, utc_now_iso(), self._history_max, gateway_id, latest]
        if since is not None:
            args.append(f"{since[0]}-{since[1]}")
        (result,) = raise_first_error(await self._commands.eval_many(self._scripts.join, [([room_key(code)], args)]))
        if result is None:
            return None
        event_id, members_json, name, frames_json, last_id, *stream = result
        return Joined(
            event_id=event_id,
            members_json=members_json,
            name=name or None,
            history=joined_history(frames_json, last_id, since, stream[0] if stream else None),
        )

    async def leave(self, code: str, conn_id: str, explicit: bool) -> str:
        """Unregister a socket: its user leaves now if ``explicit``, else after the grace if it was their last."""
        args = [conn_id, utc_now_iso(), self._history_max, 0 if explicit else self._grace_ms]
        (result,) = raise_first_error(await self._commands.eval_many(self._scripts.leave, [([room_key(code)], args)]))
        outcome, next_due, version, live = result
        if outcome == "lingering":
            await index_grace(self._scripts, code, int(next_due), int(version))
        return outcome

    async def record_unrecorded(self) -> None:
        """Record the queued leaves, oldest first; stops at the first Redis error (raised)."""
        while self.unrecorded:
            code, conn_id, explicit = self.unrecorded[0]
            await self.leave(code, conn_id, explicit)
            self.unrecorded.popleft()

    async def retire(self) -> None:
        """Forget a gateway that shut down cleanly (its sockets' leaves are recorded already)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            await pipe.zrem(GATEWAYS, self.gateway_id).delete(gateway_rooms_key(self.gateway_id)).execute()
