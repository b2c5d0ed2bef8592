-- readAfter in one round trip and one consistent view: the page after the id,
-- plus what `truncated` needs (whether the stream was ever trimmed, its
-- oldest retained id, and the newest id it ever gave).
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, '', {}, ''} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local length, added, first, last = 0, 0, '', ''
for i = 1, #info, 2 do
  if info[i] == 'length' then length = info[i + 1] end
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local trimmed = 0
if added > length then trimmed = 1 end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {1, trimmed, first, entries, last}
