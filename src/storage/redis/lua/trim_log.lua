-- Drops the log entries before a stream id, or before the oldest entry
-- still pending for any worker if that is older: every entry before both
-- is applied and acknowledged (entries are delivered in order, and one
-- delivered and not pending was acknowledged). Without its group (Redis
-- lost it) nothing can be known pending, so nothing is dropped, and the
-- acknowledgement it rides with still goes through. KEYS: log. ARGV:
-- group, id.
local function older(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, bms = tonumber(ams), tonumber(bms)
  return ams < bms or (ams == bms and tonumber(aseq) < tonumber(bseq))
end
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if pending.err then
  return 0
end
local bound = ARGV[2]
if pending[1] > 0 and older(pending[2], bound) then
  bound = pending[2]
end
return redis.call('XTRIM', KEYS[1], 'MINID', bound)
