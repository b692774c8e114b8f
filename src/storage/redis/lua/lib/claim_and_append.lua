-- A Lua function that claims both dedup keys and appends the event, or
-- only counts a duplicate; answers the id that claimed the event first,
-- or false when this claim is new. KEYS from `k + 1`: log, stats,
-- unmapped, store stats, store unmapped, then the dedup keys (delivery
-- first, as the memory backend checks), then the pairing's watched keys
-- and its mark, up to the last key. ARGV from `a + 1`: event id, dedup
-- ttl ms, event JSON, provider, "1" if unmapped, raw word, store, how many
-- keys are watched, how many marked (0 or 1). A watched key is only read
-- (set: a duplicate of its holder), a marked one only written once the
-- event is appended. The store's counts and words are fields of their own
-- keys, named by a JSON array, so the totals keep the shape older versions
-- read.
-- `SET NX GET` (Redis 7) claims a key and reads a holder in one call; a
-- claim made before a later key turns out taken is undone, so a duplicate
-- writes nothing; so is every claim if the append fails (the only write
-- that can fail on a sound key space), so that the sender's retry is not
-- taken for a duplicate of an event never recorded. The log itself is the
-- recent-events feed (see trim_log.lua), so an event is written once.
local function claim_and_append(k, a)
  local marked = #KEYS - tonumber(ARGV[a + 9])
  local claimed = marked - tonumber(ARGV[a + 8])
  local function count(outcome)
    redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4] .. ':' .. outcome, 1)
    redis.call('HINCRBY', KEYS[k + 4], cjson.encode({ARGV[a + 7], ARGV[a + 4], outcome}), 1)
  end
  local function unclaim()
    for j = k + 6, claimed do
      redis.call('DEL', KEYS[j])
    end
  end
  for i = k + 6, claimed do
    local original = redis.call('SET', KEYS[i], ARGV[a + 1], 'NX', 'PX', ARGV[a + 2], 'GET')
    if original then
      for j = k + 6, i - 1 do
        redis.call('DEL', KEYS[j])
      end
      count('duplicate')
      return original
    end
  end
  for i = claimed + 1, marked do
    local original = redis.call('GET', KEYS[i])
    if original then
      unclaim()
      count('duplicate')
      return original
    end
  end
  local appended = redis.pcall('XADD', KEYS[k + 1], '*', 'event', ARGV[a + 3])
  if type(appended) == 'table' and appended.err then
    unclaim()
    return appended
  end
  for i = marked + 1, #KEYS do
    redis.call('SET', KEYS[i], ARGV[a + 1], 'PX', ARGV[a + 2])
  end
  count('accepted')
  if ARGV[a + 5] == '1' then
    count('unmapped')
    redis.call('ZINCRBY', KEYS[k + 3], 1, ARGV[a + 4] .. ':' .. ARGV[a + 6])
    redis.call('ZINCRBY', KEYS[k + 5], 1, cjson.encode({ARGV[a + 7], ARGV[a + 4], ARGV[a + 6]}))
  end
  return false
end
