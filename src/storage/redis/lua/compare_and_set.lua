-- `compare_and_set` on its own: KEYS and ARGV as it takes them.
return compare_and_set()
