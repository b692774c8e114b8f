-- A Lua function that claims both dedup keys and appends the event, or
-- only counts a duplicate; answers the id that claimed the event first,
-- or false when this claim is new. KEYS from `k + 1`: log, stats,
-- unmapped, then the dedup keys (delivery first, as the memory backend
-- checks), then the pairing's watched keys and its mark, up to the last
-- key. ARGV from `a + 1`: event id, dedup ttl ms, event JSON, provider,
-- "1" if unmapped, raw word, how many keys are watched, how many marked
-- (0 or 1). A watched key is only read (set: a duplicate of its holder),
-- a marked one only written once the event is appended.
-- `SET NX GET` (Redis 7) claims a key and reads a holder in one call; a
-- claim made before a later key turns out taken is undone, so a duplicate
-- writes nothing; so is every claim if the append fails (the only write
-- that can fail on a sound key space), so that the sender's retry is not
-- taken for a duplicate of an event never recorded. The log itself is the
-- recent-events feed (see trim_log.lua), so an event is written once.
local function claim_and_append(k, a)
  local marked = #KEYS - tonumber(ARGV[a + 8])
  local claimed = marked - tonumber(ARGV[a + 7])
  for i = k + 4, claimed do
    local original = redis.call('SET', KEYS[i], ARGV[a + 1], 'NX', 'PX', ARGV[a + 2], 'GET')
    if original then
      for j = k + 4, i - 1 do
        redis.call('DEL', KEYS[j])
      end
      redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':duplicate', 1)
      return original
    end
  end
  for i = claimed + 1, marked do
    local original = redis.call('GET', KEYS[i])
    if original then
      for j = k + 4, claimed do
        redis.call('DEL', KEYS[j])
      end
      redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':duplicate', 1)
      return original
    end
  end
  local appended = redis.pcall('XADD', KEYS[k + 1], '*', 'event', ARGV[a + 3])
  if type(appended) == 'table' and appended.err then
    for j = k + 4, claimed do
      redis.call('DEL', KEYS[j])
    end
    return appended
  end
  for i = marked + 1, #KEYS do
    redis.call('SET', KEYS[i], ARGV[a + 1], 'PX', ARGV[a + 2])
  end
  redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':accepted', 1)
  if ARGV[a + 5] == '1' then
    redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':unmapped', 1)
    redis.call('ZINCRBY', KEYS[k + 3], 1, ARGV[a + 4] .. ':' .. ARGV[a + 6])
  end
  return false
end
