"""Every Redis key, channel and Lua script Sala uses, in one place.

Keys (``CODE`` is a room code, ``GID`` a gateway replica id). The braces are
Redis Cluster hash tags: every key of a room lives in the room's slot, so
each script touches one slot, and so does each key of a gateway.

| key | type | what |
| --- | --- | --- |
| ``sala:room:{CODE}`` | hash | the room: code, name, created_at, created_by, ``graces`` (how many leave graces it has started: a version); expires after the grace period until someone joins |
| ``sala:room:{CODE}:events`` | stream | the room's timeline (message, join, leave), field ``e`` holds the event JSON without its id |
| ``sala:room:{CODE}:conns`` | hash | connection id → ``"USER GID"``, one entry per open socket |
| ``sala:room:{CODE}:users`` | hash | user id → number of open sockets (users with at least one) |
| ``sala:room:{CODE}:names`` | hash | user id → username of present users: those with a socket and those within their leave grace |
| ``sala:room:{CODE}:grace`` | sorted set | user id → deadline (ms) of a present user with no socket left: the leave grace |
| ``sala:room:{CODE}:refs`` | hash | ``"USER REF"`` → event id of a stored message, so a retried send is stored once |
| ``sala:room:{CODE}:reforder`` | list | the ``refs`` fields, newest first, to forget the oldest past the dedupe window |
| ``sala:{gateways}`` | sorted set | live gateway id → last heartbeat (ms, the server's clock) |
| ``sala:{gateways}:dead`` | set | gateways presumed dead whose rooms are still being reaped; such a gateway's heartbeat is refused |
| ``sala:gateway:{GID}:rooms`` | set | codes of the rooms the gateway has had sockets in during its life |
| ``sala:{graces}`` | sorted set | code → the earliest leave-grace deadline the room may have: where the reaper looks |
| ``sala:{graces}:versions`` | hash | code → the room's ``graces`` version last put in ``sala:{graces}``, so the reaper never drops a grace started while it worked |
| ``sala:revoked:SID`` | string | present while a revoked session's tokens could still be unexpired |
| ``sala:revocations:loaded`` | string | set by auth once Redis holds every revocation that matters; absent after Redis lost its data, and then no token is trusted until auth restores them from Postgres |
| ``sala:ratelimit:SCOPE:ID`` | string | a fixed-window counter |

Channels: ``sala:room:{CODE}`` (sharded pub/sub on a cluster, in the room's
slot) carries each new event of the room as its
final JSON frame (published by the same script that appends it to the
stream, so the timeline and the live feed never disagree), and ephemeral
frames (typing) that are neither stored nor given an id;
``sala:revocations`` carries the session ids that were just revoked.

Presence: a user is present in a room from their first socket until they
leave explicitly (the ``leave`` frame, logout) or their last socket has been
gone for the leave grace (a reload, a dropped network, a dead gateway). A
return within the grace, to any replica, is no leave and no join. The room
closes, its keys deleted, when its last present user leaves.

Every state change of a room is one script on the room's keys. What spans
rooms is an index that only points the reaper at rooms, kept right by small
scripts of its own slot: a gateway's rooms (added to before a socket joins,
so a dead gateway's sockets are always found), and the rooms with graces
(updated after a grace starts; a version tells the reaper whether a grace
began while it worked, so it never drops one). Losing an index update to a
crash leaves a room to be found by the next pass over a dead gateway's
rooms, never a member present forever.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError

ROOM_PREFIX = "sala:room:"
GATEWAYS = "sala:{gateways}"
DEAD_GATEWAYS = "sala:{gateways}:dead"
GRACES = "sala:{graces}"
GRACE_VERSIONS = "sala:{graces}:versions"
REVOCATIONS_CHANNEL = "sala:revocations"
REVOCATIONS_LOADED = "sala:revocations:loaded"
# How every event frame starts: the scripts put the id first, ``frame_event_id`` reads it back.
EVENT_ID_PREFIX = '{"id":"'


def room_key(code: str) -> str:
    """The room hash; also the name of the room's pub/sub channel."""
    return ROOM_PREFIX + "{" + code + "}"


def code_of_channel(channel: str) -> str:
    """The room code of a room's channel (``sala:room:{CODE}``)."""
    return channel[len(ROOM_PREFIX) + 1 : -1]


def room_events_key(code: str) -> str:
    return room_key(code) + ":events"


def room_names_key(code: str) -> str:
    return room_key(code) + ":names"


def gateway_rooms_key(gateway_id: str) -> str:
    return "sala:gateway:{" + gateway_id + "}:rooms"


def revoked_key(session_id: str) -> str:
    return f"sala:revoked:{session_id}"


def ratelimit_key(scope: str, subject: str) -> str:
    return f"sala:ratelimit:{scope}:{subject}"


def event_frame(event_id: str, body: str) -> str:
    """The client frame of a stored event: its body with the id put first.

    The Lua scripts build the live frame the same way, so a frame read from
    history and one received live are byte for byte the same.
    """
    return EVENT_ID_PREFIX + event_id + '",' + body[1:]


def frame_event_id(frame: str) -> str | None:
    """The id of an event frame (always put first by the scripts), or None for an ephemeral frame."""
    if not frame.startswith(EVENT_ID_PREFIX):
        return None
    end = frame.find('"', len(EVENT_ID_PREFIX))
    return frame[len(EVENT_ID_PREFIX) : end] if end > 0 else None


def parse_event_id(event_id: str) -> tuple[int, int]:
    """A stream id ``"1700000000000-3"`` as a tuple that sorts like the timeline.

    Raises ValueError for anything that is not a stream id.
    """
    ms, _, seq = event_id.partition("-")
    if not ms.isdigit() or not (seq.isdigit() or seq == ""):
        raise ValueError(f"not an event id: {event_id!r}")
    return int(ms), int(seq or 0)


# Shared Lua for the scripts on one room's keys (KEYS[1] is always the room
# hash; its other keys derive from it, in the same slot). An event is
# appended to the stream and published in the same step, with the command
# ``ROOM_PUBLISH`` names (see ``with_room_publish``).
_ROOM_LIB = """
local EVENT_ID_PREFIX = '""" + EVENT_ID_PREFIX + """'

local function json_array(values)
  local parts = {}
  for i, v in ipairs(values) do parts[i] = cjson.encode(v) end
  return '[' .. table.concat(parts, ',') .. ']'
end

local function members_json(room)
  local names = redis.call('HVALS', room .. ':names')
  table.sort(names)
  return json_array(names)
end

-- Milliseconds on the Redis server's clock, the one clock every replica shares.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split_pair(value)
  local sep = string.find(value, ' ', 1, true)
  return string.sub(value, 1, sep - 1), string.sub(value, sep + 1)
end

local function append_event(room, maxlen, body)
  local id = redis.call('XADD', room .. ':events', 'MAXLEN', '~', maxlen, '*', 'e', body)
  redis.call(ROOM_PUBLISH, room, EVENT_ID_PREFIX .. id .. '",' .. string.sub(body, 2))
  return id
end

-- A join or leave carries the change and the new head count, never the member list.
local function presence_event(kind, room, username, ts, maxlen)
  local body = '{"type":"' .. kind .. '","username":' .. cjson.encode(username) ..
    ',"ts":' .. cjson.encode(ts) .. ',"count":' .. redis.call('HLEN', room .. ':names') .. '}'
  return append_event(room, maxlen, body)
end

-- The user is no longer present: emit "leave", or close the room if they were its last.
local function depart(room, user, ts, maxlen)
  redis.call('ZREM', room .. ':grace', user)
  local username = redis.call('HGET', room .. ':names', user)
  if not username then return 'gone' end
  redis.call('HDEL', room .. ':names', user)
  if redis.call('HLEN', room .. ':names') == 0 then
    redis.call('DEL', room, room .. ':events', room .. ':conns', room .. ':users', room .. ':names',
      room .. ':grace', room .. ':refs', room .. ':reforder')
    return 'closed'
  end
  presence_event('leave', room, username, ts, maxlen)
  return 'left'
end

-- Remove one socket. The user's last socket starts their leave grace
-- (grace_ms > 0) or, for an explicit leave, makes them leave at once.
local function remove_conn(room, conn, ts, maxlen, grace_ms)
  local owner = redis.call('HGET', room .. ':conns', conn)
  if not owner then return 'gone' end
  local user = split_pair(owner)
  redis.call('HDEL', room .. ':conns', conn)
  if redis.call('HINCRBY', room .. ':users', user, -1) > 0 then return 'stayed' end
  redis.call('HDEL', room .. ':users', user)
  if grace_ms > 0 then
    redis.call('ZADD', room .. ':grace', now_ms() + grace_ms, user)
    redis.call('HINCRBY', room, 'graces', 1)
    return 'lingering'
  end
  return depart(room, user, ts, maxlen)
end

-- {earliest grace deadline or 0, graces version, 1 if the room is live}: what the grace index needs.
local function grace_state(room)
  if redis.call('EXISTS', room) == 0 then return {0, 0, 0} end
  local first = redis.call('ZRANGE', room .. ':grace', 0, 0, 'WITHSCORES')
  return {tonumber(first[2] or '0'), tonumber(redis.call('HGET', room, 'graces') or '0'), 1}
end
"""

# KEYS[1] room hash. ARGV: code, name, created_at, created_by, grace seconds.
# Creates the room only if the code is free; returns 1 if created, 0 if taken.
CREATE_ROOM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'code', ARGV[1], 'name', ARGV[2], 'created_at', ARGV[3], 'created_by', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1] room hash. ARGV: conn id, user id, username, ts, maxlen, gateway id,
# and optionally the history the socket starts with, read in the same round
# trip: ARGV[7] how many of the latest events, ARGV[8] an event id to read
# every retained event after instead. Registers a socket (the gateway has put
# the room in its rooms set first). A user who was not present emits "join";
# one back within the grace emits nothing. Returns false if the room is not
# live, else {join event id or '', members JSON, room name}, followed with a
# history by the history's frames as one JSON array (oldest first, each frame
# as the live feed carries it), the last one's id or '', and, after an id,
# the stream's {length, entries added, first entry id or last generated id}
# (false without a stream), which tell whether trimming removed events after
# it. One string for the history spares the gateway parsing every event.
JOIN = _ROOM_LIB + """
local function stream_state(events)
  if redis.call('EXISTS', events) == 0 then return false end
  local info = redis.call('XINFO', 'STREAM', events)
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  local first = fields['first-entry']
  return {fields['length'], fields['entries-added'], first and first[1] or fields['last-generated-id']}
end

-- Stream entries as a JSON array of their frames, from first to last (step 1 or -1).
local function frames_json(entries, first, last, step)
  local frames = {}
  for i = first, last, step do
    local id, fields = entries[i][1], entries[i][2]
    for f = 1, #fields, 2 do
      if fields[f] == 'e' then
        frames[#frames + 1] = EVENT_ID_PREFIX .. id .. '",' .. string.sub(fields[f + 1], 2)
      end
    end
  end
  return '[' .. table.concat(frames, ',') .. ']'
end

local room, conn, user = KEYS[1], ARGV[1], ARGV[2]
if redis.call('EXISTS', room) == 0 then return false end
redis.call('PERSIST', room)
local event_id = ''
-- A join run again for the same socket (a batch resent after its connection broke) counts the socket once.
if redis.call('HSET', room .. ':conns', conn, user .. ' ' .. ARGV[6]) == 1
    and redis.call('HINCRBY', room .. ':users', user, 1) == 1 then
  redis.call('ZREM', room .. ':grace', user)
  if redis.call('HSETNX', room .. ':names', user, ARGV[3]) == 1 then
    event_id = presence_event('join', room, ARGV[3], ARGV[4], ARGV[5])
  end
end
local joined = {event_id, members_json(room), redis.call('HGET', room, 'name') or ''}
if ARGV[7] then
  local events = room .. ':events'
  if ARGV[8] then
    -- Nothing follows the greatest id, which has no exclusive range.
    local after = redis.pcall('XRANGE', events, '(' .. ARGV[8], '+')
    if after.err then after = {} end
    joined[4] = frames_json(after, 1, #after, 1)
    joined[5] = #after > 0 and after[#after][1] or ''
    joined[6] = stream_state(events)
  else
    local latest = redis.call('XREVRANGE', events, '+', '-', 'COUNT', ARGV[7])
    joined[4] = frames_json(latest, #latest, 1, -1)
    joined[5] = #latest > 0 and latest[1][1] or ''
  end
end
return joined
"""

# KEYS[1] room hash. ARGV: conn id, ts, maxlen, grace ms (0: an explicit
# leave). Returns {outcome, grace state...}: the outcome is left, stayed,
# closed, gone or lingering; after lingering the caller indexes the grace.
LEAVE = _ROOM_LIB + """
local outcome = remove_conn(KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
local state = grace_state(KEYS[1])
return {outcome, state[1], state[2], state[3]}
"""

# KEYS[1] room hash. ARGV: gateway id, grace ms, ts, maxlen. The sockets a
# dead gateway held in the room are removed as dropped ones: their users get
# the leave grace, so a dead gateway never closes a room under members who
# come back. Idempotent. Returns the grace state.
DROP_GATEWAY = _ROOM_LIB + """
local room, gid = KEYS[1], ARGV[1]
local conns = redis.call('HGETALL', room .. ':conns')
for i = 1, #conns, 2 do
  local _, owner_gid = split_pair(conns[i + 1])
  if owner_gid == gid then remove_conn(room, conns[i], ARGV[3], ARGV[4], tonumber(ARGV[2])) end
end
return grace_state(room)
"""

# KEYS[1] room hash. ARGV: ts, maxlen, batch. Users whose grace ran out
# leave (at most a batch). Returns the grace state.
EXPIRE_GRACES = _ROOM_LIB + """
local room = KEYS[1]
for _, user in ipairs(redis.call('ZRANGEBYSCORE', room .. ':grace', '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[3]))) do
  if redis.call('HEXISTS', room .. ':users', user) == 1 then
    redis.call('ZREM', room .. ':grace', user)
  else
    depart(room, user, ARGV[1], ARGV[2])
  end
end
return grace_state(room)
"""

# KEYS[1] room hash. ARGV: maxlen, event body JSON (without id), dedupe
# field ("USER REF"), dedupe window. Appends a message if the room is live
# and this user's ref is not already stored. Returns {id, 1 if it was stored
# before}, or false if the room is not live.
APPEND_MESSAGE = _ROOM_LIB + """
local room, field = KEYS[1], ARGV[3]
if redis.call('EXISTS', room) == 0 then return false end
local stored = redis.call('HGET', room .. ':refs', field)
if stored then return {stored, 1} end
local id = append_event(room, ARGV[1], ARGV[2])
redis.call('HSET', room .. ':refs', field, id)
if redis.call('LPUSH', room .. ':reforder', field) > tonumber(ARGV[4]) then
  redis.call('HDEL', room .. ':refs', redis.call('RPOP', room .. ':reforder'))
end
return {id, 0}
"""

# KEYS[1] room hash. ARGV: frame JSON. Publishes an ephemeral frame (typing)
# to a live room without storing it; returns 1 if the room is live.
PUBLISH_EPHEMERAL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call(ROOM_PUBLISH, KEYS[1], ARGV[1])
return 1
"""

# KEYS[1] room hash. ARGV: a message's dedupe key, its event id. Writes the
# ref again if it still names that event: 1; 0 if it does not; nil if the
# room is gone. A write of an unchanged value is still replicated, so a
# ``WAIT`` after it on the same connection proves the message replicated
# (``services.gateway.replicated``). Sent whole with ``EVAL``.
REASSERT_REF = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HGET', KEYS[1] .. ':refs', ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1] .. ':refs', ARGV[1], ARGV[2])
return 1
"""

# KEYS[1] graces zset, KEYS[2] versions hash. ARGV: code, deadline, version.
# Points the reaper at a room where a grace started: no later than the
# deadline, and remembering the newest version indexed.
INDEX_GRACE = """
local code, deadline, version = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local current = redis.call('ZSCORE', KEYS[1], code)
if not current or deadline < tonumber(current) then redis.call('ZADD', KEYS[1], deadline, code) end
if version > tonumber(redis.call('HGET', KEYS[2], code) or '0') then redis.call('HSET', KEYS[2], code, version) end
return 0
"""

# KEYS[1] graces zset, KEYS[2] versions hash. ARGV: code, and the grace
# state the room answered after the reaper's pass: next deadline, version,
# live. Moves the room's entry to its next deadline, or drops it, unless a
# grace indexed meanwhile (a newer version) says the room needs it still.
SETTLE_GRACE = """
local code, next_due, version, live = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local newer = tonumber(redis.call('HGET', KEYS[2], code) or '0') > version
if live and newer then
  if next_due > 0 then
    local current = redis.call('ZSCORE', KEYS[1], code)
    if not current or next_due < tonumber(current) then redis.call('ZADD', KEYS[1], next_due, code) end
  end
  return 0
end
if live and next_due > 0 then
  redis.call('ZADD', KEYS[1], next_due, code)
else
  redis.call('ZREM', KEYS[1], code)
  redis.call('HDEL', KEYS[2], code)
end
return 0
"""

# KEYS[1] live gateways zset, KEYS[2] dead gateways set. ARGV: timeout ms.
# Moves the gateways silent for the timeout to the dead set (their heartbeat
# is refused from then on); returns the dead set, whose rooms the reaper
# then goes through.
MARK_DEAD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, gid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))) do
  redis.call('ZREM', KEYS[1], gid)
  redis.call('SADD', KEYS[2], gid)
end
return redis.call('SMEMBERS', KEYS[2])
"""

# KEYS[1] live gateways zset, KEYS[2] dead gateways set. ARGV: gateway id.
# Records a heartbeat at the server's time. Returns 1 if the gateway was not
# known (Redis lost its data), -1 if it was presumed dead (it must take a new
# id: its old sockets are being reaped), else 0.
HEARTBEAT = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return -1 end
local t = redis.call('TIME')
return redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
"""

# KEYS[1] counter. ARGV: window seconds, limit. Counts one attempt; returns
# {count, seconds until the window resets}.
RATE_LIMIT_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""

# KEYS: counters. ARGV: window seconds and limit of each counter, in pairs.
# Takes one attempt from every counter, or from none if any is used up, in
# one step, so concurrent callers cannot overdraw a budget. Returns {1, 0},
# or {0, seconds until the used-up counter with the longest wait resets}.
RATE_LIMIT_RESERVE = """
local wait, spent = 0, false
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i]) then
    spent = true
    wait = math.max(wait, redis.call('TTL', key))
  end
end
if spent then return {0, math.max(wait, 1)} end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[2 * i - 1]) end
end
return {1, 0}
"""

# KEYS: counters. Gives back one attempt taken by RATE_LIMIT_RESERVE (it
# turned out not to count); a counter that expired meanwhile stays absent.
RATE_LIMIT_REFUND = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 0
"""


def with_room_publish(script: str, sharded: bool) -> str:
    """The script with ``ROOM_PUBLISH`` defined: ``SPUBLISH`` on a cluster, ``PUBLISH`` on one server.

    Sharded pub/sub (Redis 7) sends a room's events only to the shard that
    owns the room's slot, where the hub subscribes with ``SSUBSCRIBE``; a
    classic ``PUBLISH`` in a cluster is copied to every node.
    """
    if "ROOM_PUBLISH" not in script:
        return script
    return f"local ROOM_PUBLISH = '{'SPUBLISH' if sharded else 'PUBLISH'}'\n" + script


class Script:
    """A Lua script run by SHA, and sent whole (``EVAL``) to a node that does not know it yet.

    redis-py's own script object loads a missing script with ``SCRIPT LOAD``,
    which a cluster client sends to every primary: with one primary out of
    reach, that fails even for keys on the primaries it reaches. ``EVAL``
    goes to the one node that owns the keys, and caches the script there.
    """

    __slots__ = ("registered_client", "script", "sha")

    def __init__(self, redis: Redis | RedisCluster, script: str) -> None:
        self.registered_client = redis
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[object] = ()) -> Any:
        try:
            return await self.registered_client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.registered_client.eval(self.script, len(keys), *keys, *args)


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts registered on one client (each runs by SHA, loaded on first use)."""

    create_room: Script
    join: Script
    leave: Script
    append_message: Script
    publish_ephemeral: Script
    drop_gateway: Script
    expire_graces: Script
    index_grace: Script
    settle_grace: Script
    mark_dead: Script
    rate_limit_hit: Script
    rate_limit_reserve: Script
    rate_limit_refund: Script

    @classmethod
    def register(cls, redis: Redis | RedisCluster, sharded: bool | None = None) -> "Scripts":
        """The scripts on ``redis``; room events go out sharded on a cluster unless ``sharded`` says otherwise."""
        sharded = isinstance(redis, RedisCluster) if sharded is None else sharded

        def script(text: str) -> Script:
            return Script(redis, with_room_publish(text, sharded))

        return cls(
            create_room=script(CREATE_ROOM),
            join=script(JOIN),
            leave=script(LEAVE),
            append_message=script(APPEND_MESSAGE),
            publish_ephemeral=script(PUBLISH_EPHEMERAL),
            drop_gateway=script(DROP_GATEWAY),
            expire_graces=script(EXPIRE_GRACES),
            index_grace=script(INDEX_GRACE),
            settle_grace=script(SETTLE_GRACE),
            mark_dead=script(MARK_DEAD),
            rate_limit_hit=script(RATE_LIMIT_HIT),
            rate_limit_reserve=script(RATE_LIMIT_RESERVE),
            rate_limit_refund=script(RATE_LIMIT_REFUND),
        )
