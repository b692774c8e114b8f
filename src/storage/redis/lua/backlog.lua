-- A partition's backlog: its entries not yet acknowledged, pending or
-- never delivered (the group's lag). KEYS: log. ARGV: group. Redis cannot
-- always tell the lag of a stream that entries were deleted from (older
-- versions deleted each on acknowledgement) until those deletions are
-- trimmed away; till then the stream's length, an upper bound, is the
-- answer.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #group, 2 do
    fields[group[i]] = group[i + 1]
  end
  if fields['name'] == ARGV[1] and fields['lag'] then
    return fields['pending'] + fields['lag']
  end
end
return redis.call('XLEN', KEYS[1])
