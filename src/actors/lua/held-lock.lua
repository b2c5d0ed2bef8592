-- A lock held by the value its taker set (inbox-takeover.ts): renewed or
-- released only by that taker, never by one whose lock expired and was taken.
-- KEYS[1] the lock; ARGV[1] the taker's value; ARGV[2] 'renew' or 'release';
-- ARGV[3] the new lifetime in milliseconds (renew). Returns 1 when it held it.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'renew' then
  return redis.call('pexpire', KEYS[1], ARGV[3])
end
return redis.call('del', KEYS[1])
