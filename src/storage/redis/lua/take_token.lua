-- One step of GCRA (the generic cell rate algorithm) on one store's bucket
-- for one provider, as `storage::gcra` does in Rust. Redis's own clock
-- (TIME) makes every gateway process share one bucket on one time; a
-- script may write after reading it since Redis 7 replicates a script's
-- effects, not the script. The bucket expires once full again, so idle
-- ones vanish. KEYS: bucket. ARGV: interval (microseconds), burst.
-- Returns 0 when a token was taken, else the microseconds until one
-- comes back (nothing written).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local next_tat = tat + interval
local allowed_from = next_tat - interval * burst
if now < allowed_from then
  return allowed_from - now
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
  'PX', math.floor((next_tat - now) / 1000) + 1)
return 0
