"""Every Redis key, channel and Lua script Sala uses, in one place.

Keys (``CODE`` is a room code, ``GID`` a gateway replica id):

| key | type | what |
| --- | --- | --- |
| ``sala:room:CODE`` | hash | the room: code, name, created_at, created_by; expires after the grace period until someone joins |
| ``sala:room:CODE:events`` | stream | the room's timeline (message, join, leave), field ``e`` holds the event JSON without its id |
| ``sala:room:CODE:conns`` | hash | connection id → user id, one entry per open socket |
| ``sala:room:CODE:users`` | hash | user id → number of open sockets (users with at least one) |
| ``sala:room:CODE:names`` | hash | user id → username of present users: those with a socket and those within their leave grace |
| ``sala:room:CODE:refs`` | hash | ``"USER REF"`` → event id of a stored message, so a retried send is stored once |
| ``sala:room:CODE:reforder`` | list | the ``refs`` fields, newest first, to forget the oldest past the dedupe window |
| ``sala:gateways`` | sorted set | gateway id → last heartbeat (ms) |
| ``sala:gateway:GID:conns`` | set | ``"CODE CONN"`` for each socket the gateway holds |
| ``sala:lingering`` | sorted set | ``"CODE USER"`` → deadline (ms) of a present user with no socket left: the leave grace |
| ``sala:revoked:SID`` | string | present while a revoked session's tokens could still be unexpired |
| ``sala:revocations:loaded`` | string | set by auth once Redis holds every revocation that matters; absent after Redis lost its data, and then no token is trusted until auth restores them from Postgres |
| ``sala:ratelimit:SCOPE:ID`` | string | a fixed-window counter |

Channels: ``sala:room:CODE`` carries each new event of the room as its final
JSON frame (published by the same script that appends it to the stream, so
the timeline and the live feed never disagree), and ephemeral frames (typing)
that are neither stored nor given an id; ``sala:revocations`` carries the
session ids that were just revoked.

Presence: a user is present in a room from their first socket until they
leave explicitly (the ``leave`` frame, logout) or their last socket has been
gone for the leave grace (a reload, a dropped network, a dead gateway). A
return within the grace, to any replica, is no leave and no join. The room
closes, its keys deleted, when its last present user leaves.

Every state change that touches more than one key is one Lua script. The
reaper script touches the keys of many rooms, so it needs a single Redis (or
one shard holding all of Sala's keys), as documented in docs/operations.md.
"""

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

ROOM_PREFIX = "sala:room:"
GATEWAYS = "sala:gateways"
GATEWAY_PREFIX = "sala:gateway:"
LINGERING = "sala:lingering"
REVOCATIONS_CHANNEL = "sala:revocations"
REVOCATIONS_LOADED = "sala:revocations:loaded"
# How every event frame starts: the scripts put the id first, ``frame_event_id`` reads it back.
EVENT_ID_PREFIX = '{"id":"'


def room_key(code: str) -> str:
    """The room hash; also the name of the room's pub/sub channel."""
    return ROOM_PREFIX + code


def room_events_key(code: str) -> str:
    return room_key(code) + ":events"


def room_users_key(code: str) -> str:
    return room_key(code) + ":users"


def room_names_key(code: str) -> str:
    return room_key(code) + ":names"


def gateway_conns_key(gateway_id: str) -> str:
    return f"{GATEWAY_PREFIX}{gateway_id}:conns"


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


# Shared Lua: the room's other keys derive from its hash key, and an event is
# appended to the stream and published in the same step.
_LUA_LIB = (
    """
local ROOM_PREFIX = '"""
    + ROOM_PREFIX
    + """'
local GATEWAY_PREFIX = '"""
    + GATEWAY_PREFIX
    + """'
local LINGERING = '"""
    + LINGERING
    + """'
local EVENT_ID_PREFIX = '"""
    + EVENT_ID_PREFIX
    + """'

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

local function append_event(room, maxlen, body)
  local id = redis.call('XADD', room .. ':events', 'MAXLEN', '~', maxlen, '*', 'e', body)
  redis.call('PUBLISH', room, EVENT_ID_PREFIX .. id .. '",' .. string.sub(body, 2))
  return id
end

-- A join or leave carries the change and the new head count, never the member list.
local function presence_event(kind, room, username, ts, maxlen)
  local body = '{"type":"' .. kind .. '","username":' .. cjson.encode(username) ..
    ',"ts":' .. cjson.encode(ts) .. ',"count":' .. redis.call('HLEN', room .. ':names') .. '}'
  return append_event(room, maxlen, body)
end

-- Milliseconds on the Redis server's clock, the one clock every replica shares.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split_member(member)
  local sep = string.find(member, ' ', 1, true)
  return string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
end

-- The user is no longer present: emit "leave", or close the room if they were its last.
local function depart(room, code, user, ts, maxlen)
  redis.call('ZREM', LINGERING, code .. ' ' .. user)
  local username = redis.call('HGET', room .. ':names', user)
  if not username then return 'gone' end
  redis.call('HDEL', room .. ':names', user)
  if redis.call('HLEN', room .. ':names') == 0 then
    redis.call('DEL', room, room .. ':events', room .. ':conns', room .. ':users', room .. ':names',
      room .. ':refs', room .. ':reforder')
    return 'closed'
  end
  presence_event('leave', room, username, ts, maxlen)
  return 'left'
end

-- Remove one socket. The user's last socket starts their leave grace
-- (grace_ms > 0) or, for an explicit leave, makes them leave at once.
local function remove_conn(room, code, conn, ts, maxlen, grace_ms)
  local user = redis.call('HGET', room .. ':conns', conn)
  if not user then return 'gone' end
  redis.call('HDEL', room .. ':conns', conn)
  if redis.call('HINCRBY', room .. ':users', user, -1) > 0 then return 'stayed' end
  redis.call('HDEL', room .. ':users', user)
  if grace_ms > 0 then
    redis.call('ZADD', LINGERING, now_ms() + grace_ms, code .. ' ' .. user)
    return 'lingering'
  end
  return depart(room, code, user, ts, maxlen)
end
"""
)

# KEYS[1] room hash. ARGV: code, name, created_at, created_by, grace seconds.
# Creates the room only if the code is free; returns 1 if created, 0 if taken.
CREATE_ROOM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'code', ARGV[1], 'name', ARGV[2], 'created_at', ARGV[3], 'created_by', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1] room hash, KEYS[2] gateway conns set, KEYS[3] lingering zset.
# ARGV: code, conn id, user id, username, ts, maxlen. Registers a socket. A
# user who was not present emits "join"; one back within the grace emits
# nothing. Returns false if the room is not live, else
# {join event id or '', members JSON, room name}.
JOIN = _LUA_LIB + """
local room, code, conn, user = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', room) == 0 then return false end
redis.call('PERSIST', room)
redis.call('HSET', room .. ':conns', conn, user)
redis.call('SADD', KEYS[2], code .. ' ' .. conn)
local event_id = ''
if redis.call('HINCRBY', room .. ':users', user, 1) == 1 then
  redis.call('ZREM', KEYS[3], code .. ' ' .. user)
  if redis.call('HSETNX', room .. ':names', user, ARGV[4]) == 1 then
    event_id = presence_event('join', room, ARGV[4], ARGV[5], ARGV[6])
  end
end
return {event_id, members_json(room), redis.call('HGET', room, 'name') or ''}
"""

# KEYS[1] room hash, KEYS[2] gateway conns set, KEYS[3] lingering zset.
# ARGV: code, conn id, ts, maxlen, grace ms (0: an explicit leave).
# Returns the outcome: left, stayed, closed, gone or lingering.
LEAVE = _LUA_LIB + """
redis.call('SREM', KEYS[2], ARGV[1] .. ' ' .. ARGV[2])
return remove_conn(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]))
"""

# KEYS[1] room hash. ARGV: maxlen, event body JSON (without id), dedupe
# field ("USER REF"), dedupe window. Appends a message if the room is live
# and this user's ref is not already stored. Returns {id, 1 if it was stored
# before}, or false if the room is not live.
APPEND_MESSAGE = _LUA_LIB + """
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
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""

# KEYS[1] gateways zset, KEYS[2] lingering zset. ARGV: timeout ms, ts,
# maxlen, batch size, grace ms. The sockets of a gateway silent for the
# timeout are removed as dropped ones: their users get the leave grace, so a
# dead gateway never closes a room under members who come back. Users whose
# grace ran out leave. Returns how many entries it handled (at most a batch).
REAP = _LUA_LIB + """
local now, timeout, ts, maxlen, batch = now_ms(), tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
local handled = 0
for _, gid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - timeout)) do
  local set = GATEWAY_PREFIX .. gid .. ':conns'
  for _, member in ipairs(redis.call('SPOP', set, batch - handled)) do
    local code, conn = split_member(member)
    remove_conn(ROOM_PREFIX .. code, code, conn, ts, maxlen, grace)
    handled = handled + 1
  end
  if redis.call('SCARD', set) == 0 then redis.call('ZREM', KEYS[1], gid) end
  if handled >= batch then return handled end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, batch - handled)) do
  local code, user = split_member(member)
  local room = ROOM_PREFIX .. code
  if redis.call('HEXISTS', room .. ':users', user) == 1 then
    redis.call('ZREM', KEYS[2], member)
  else
    depart(room, code, user, ts, maxlen)
  end
  handled = handled + 1
end
return handled
"""

# KEYS[1] gateways zset. ARGV: gateway id. Records a heartbeat at the
# server's time; returns 1 if the gateway was not known (it had been reaped,
# or Redis lost its data), else 0.
HEARTBEAT = _LUA_LIB + """
return redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
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


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts registered on one client (each runs by SHA, loaded on first use)."""

    create_room: AsyncScript
    join: AsyncScript
    leave: AsyncScript
    append_message: AsyncScript
    publish_ephemeral: AsyncScript
    reap: AsyncScript
    rate_limit_hit: AsyncScript
    rate_limit_reserve: AsyncScript
    rate_limit_refund: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> "Scripts":
        return cls(
            create_room=redis.register_script(CREATE_ROOM),
            join=redis.register_script(JOIN),
            leave=redis.register_script(LEAVE),
            append_message=redis.register_script(APPEND_MESSAGE),
            publish_ephemeral=redis.register_script(PUBLISH_EPHEMERAL),
            reap=redis.register_script(REAP),
            rate_limit_hit=redis.register_script(RATE_LIMIT_HIT),
            rate_limit_reserve=redis.register_script(RATE_LIMIT_RESERVE),
            rate_limit_refund=redis.register_script(RATE_LIMIT_REFUND),
        )
