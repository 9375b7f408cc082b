"""Every Redis key, channel and Lua script Sala uses, in one place.

Keys (``CODE`` is a room code, ``GID`` a gateway replica id):

| key | type | what |
| --- | --- | --- |
| ``sala:room:CODE`` | hash | the room: code, name, created_at, created_by; expires after the grace period until someone joins |
| ``sala:room:CODE:events`` | stream | the room's timeline (message, join, leave), field ``e`` holds the event JSON without its id |
| ``sala:room:CODE:conns`` | hash | connection id → user id, one entry per open socket |
| ``sala:room:CODE:users`` | hash | user id → number of open sockets |
| ``sala:room:CODE:names`` | hash | user id → username of present users |
| ``sala:gateways`` | sorted set | gateway id → last heartbeat (ms) |
| ``sala:gateway:GID:conns`` | set | ``"CODE CONN"`` for each socket the gateway holds |
| ``sala:lingering`` | sorted set | ``"CODE CONN"`` → deadline (ms) of sockets of a drained gateway, kept so that a quick reconnect is no leave and join |
| ``sala:revoked:SID`` | string | present while a revoked session's tokens could still be unexpired |
| ``sala:revocations:loaded`` | string | set by auth once Redis holds every revocation that matters; absent after Redis lost its data, and then no token is trusted until auth restores them from Postgres |
| ``sala:ratelimit:SCOPE:ID`` | string | a fixed-window counter |

Channels: ``sala:room:CODE`` carries each new event of the room as its final
JSON frame (published by the same script that appends it to the stream, so
the timeline and the live feed never disagree); ``sala:revocations`` carries
the session ids that were just revoked.

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
    return '{"id":"' + event_id + '",' + body[1:]


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
_LUA_LIB = """
local ROOM_PREFIX = '%(room_prefix)s'
local GATEWAY_PREFIX = '%(gateway_prefix)s'

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
  redis.call('PUBLISH', room, '{"id":"' .. id .. '",' .. string.sub(body, 2))
  return id
end

local function presence_event(kind, room, username, ts, maxlen)
  local body = '{"type":"' .. kind .. '","username":' .. cjson.encode(username) ..
    ',"ts":' .. cjson.encode(ts) .. ',"members":' .. members_json(room) .. '}'
  return append_event(room, maxlen, body)
end

-- Remove one connection; emit "leave" if it was the user's last one and
-- close the room if it was the room's last user. Returns the outcome.
local function remove_conn(room, conn, ts, maxlen)
  local user = redis.call('HGET', room .. ':conns', conn)
  if not user then return 'gone' end
  redis.call('HDEL', room .. ':conns', conn)
  if redis.call('HINCRBY', room .. ':users', user, -1) > 0 then return 'stayed' end
  redis.call('HDEL', room .. ':users', user)
  local username = redis.call('HGET', room .. ':names', user) or ''
  redis.call('HDEL', room .. ':names', user)
  if redis.call('HLEN', room .. ':users') == 0 then
    redis.call('DEL', room, room .. ':events', room .. ':conns', room .. ':users', room .. ':names')
    return 'closed'
  end
  presence_event('leave', room, username, ts, maxlen)
  return 'left'
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
""" % {"room_prefix": ROOM_PREFIX, "gateway_prefix": GATEWAY_PREFIX}

# KEYS[1] room hash. ARGV: code, name, created_at, created_by, grace seconds.
# Creates the room only if the code is free; returns 1 if created, 0 if taken.
CREATE_ROOM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'code', ARGV[1], 'name', ARGV[2], 'created_at', ARGV[3], 'created_by', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1] room hash, KEYS[2] gateway conns set. ARGV: code, conn id, user id,
# username, ts, maxlen. Registers a connection; the user's first one emits
# "join". Returns false if the room is not live, else
# {join event id or '', members JSON, room name}.
JOIN = _LUA_LIB + """
local room = KEYS[1]
if redis.call('EXISTS', room) == 0 then return false end
redis.call('PERSIST', room)
redis.call('HSET', room .. ':conns', ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1] .. ' ' .. ARGV[2])
local event_id = ''
if redis.call('HINCRBY', room .. ':users', ARGV[3], 1) == 1 then
  redis.call('HSET', room .. ':names', ARGV[3], ARGV[4])
  event_id = presence_event('join', room, ARGV[4], ARGV[5], ARGV[6])
end
return {event_id, members_json(room), redis.call('HGET', room, 'name') or ''}
"""

# KEYS[1] room hash, KEYS[2] gateway conns set, KEYS[3] lingering set.
# ARGV: code, conn id, ts, maxlen, linger ms (0: leave now).
# Returns the outcome: left, stayed, closed, gone or lingering.
LEAVE = _LUA_LIB + """
local member = ARGV[1] .. ' ' .. ARGV[2]
redis.call('SREM', KEYS[2], member)
if tonumber(ARGV[5]) > 0 then
  if redis.call('HEXISTS', KEYS[1] .. ':conns', ARGV[2]) == 0 then return 'gone' end
  redis.call('ZADD', KEYS[3], now_ms() + tonumber(ARGV[5]), member)
  return 'lingering'
end
return remove_conn(KEYS[1], ARGV[2], ARGV[3], ARGV[4])
"""

# KEYS[1] room hash. ARGV: maxlen, event body JSON (without id).
# Appends a message if the room is live; returns its id, or false.
APPEND_MESSAGE = _LUA_LIB + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return append_event(KEYS[1], ARGV[1], ARGV[2])
"""

# KEYS[1] gateways zset, KEYS[2] lingering zset. ARGV: timeout ms, ts,
# maxlen, batch size. Removes up to a batch of connections of dead
# gateways and of lingering sockets past their deadline, emitting the leaves
# that are due. Returns how many connections it removed.
REAP = _LUA_LIB + """
local now, timeout, ts, maxlen, batch = now_ms(), tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local removed = 0
for _, gid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - timeout)) do
  local set = GATEWAY_PREFIX .. gid .. ':conns'
  for _, member in ipairs(redis.call('SPOP', set, batch - removed)) do
    local code, conn = split_member(member)
    remove_conn(ROOM_PREFIX .. code, conn, ts, maxlen)
    removed = removed + 1
  end
  if redis.call('SCARD', set) == 0 then redis.call('ZREM', KEYS[1], gid) end
  if removed >= batch then return removed end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, batch - removed)) do
  redis.call('ZREM', KEYS[2], member)
  local code, conn = split_member(member)
  remove_conn(ROOM_PREFIX .. code, conn, ts, maxlen)
  removed = removed + 1
end
return removed
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


@dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts registered on one client (each runs by SHA, loaded on first use)."""

    create_room: AsyncScript
    join: AsyncScript
    leave: AsyncScript
    append_message: AsyncScript
    reap: AsyncScript
    heartbeat: AsyncScript
    rate_limit_hit: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> "Scripts":
        return cls(
            create_room=redis.register_script(CREATE_ROOM),
            join=redis.register_script(JOIN),
            leave=redis.register_script(LEAVE),
            append_message=redis.register_script(APPEND_MESSAGE),
            reap=redis.register_script(REAP),
            heartbeat=redis.register_script(HEARTBEAT),
            rate_limit_hit=redis.register_script(RATE_LIMIT_HIT),
        )
