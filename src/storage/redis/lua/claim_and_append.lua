-- `claim_and_append` on its own: KEYS and ARGV as it takes them.
return claim_and_append(0, 0)
