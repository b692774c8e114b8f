-- Claims and appends an event and, if the claim is new, writes its
-- fulfillment, in one step: the paths that apply an update before they
-- answer pay one round trip for both. KEYS: `compare_and_set`'s, then
-- `claim_and_append`'s; ARGV likewise, the claim's last. Answers the
-- first claimant's id for a duplicate (nothing written), else 1 or 0 as
-- `compare_and_set` (the event is appended either way).
local original = claim_and_append(5 + 2 * tonumber(ARGV[1]), #ARGV - 8)
if original then return original end
return compare_and_set()
