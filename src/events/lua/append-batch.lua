-- Appends a batch in one round trip, atomically: per event XADD with its own
-- id ("<seq>-0", from the outbox) and the approximate trim, then each
-- stream's expiry, and ONE notification for the batch, published in the
-- same script so it follows its entries exactly: a record per event added
-- (the event itself unless its data is large), records joined by
-- RECORD_SEPARATOR (notification.ts).
-- KEYS: the channel, then the batch's streams. ARGV: history, ttl ms, largest
-- entry carried, the length of the stream keys' prefix (a key is that prefix
-- and the user id), one character per stream ('1': refresh its expiry), then
-- the whole batch as ONE argument: per event "<index of its stream in
-- KEYS>\n<id>\n" followed by the entry text (entry.ts), events joined by
-- RECORD_SEPARATOR ('\30', which no JSON text, name, id or number holds). The
-- script splits each into the stream entry's fields; a record carries
-- "<user>\n<id>\n" and the entry text. One argument rather than two per
-- event: node-redis encodes every argument, and Redis parses each and makes
-- it a Lua string, so a batch of 128 cost 256 of each (bench:ws). A stream
-- the script creates always gets its expiry (XADD NOMKSTREAM tells), so no
-- stream is ever left without one.
-- It returns one text, a result per event joined by ',' (one reply to decode,
-- not one per event): the event's id when it added it, '=' when the stream
-- already holds that id or a newer one (Redis refuses an id that is not
-- above the stream's top: an event relayed twice is refused, not
-- duplicated), and '' when it failed. XADD runs under redis.pcall: one that
-- fails (a key holding something other than a stream: WRONGTYPE, refused
-- before anything is written) cannot stop the script between an entry and
-- its notification, and fails only the rest of its own stream's events in
-- this batch, so a stream never gets a later event before an earlier one.
local history, ttl, carry, skip, refresh, batch = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
local find, sub = string.find, string.sub
local results, records, users, failed, added, expire = {}, {}, {}, {}, {}, {}
local pos, len = 1, #batch
while pos <= len do
  local stop = find(batch, '\30', pos, true) or (len + 1)
  -- the newlines ending the stream index, id, name and time; nil past this event's end
  local s = find(batch, '\n', pos, true)
  if s and s > stop then s = nil end
  local a = s and find(batch, '\n', s + 1, true)
  if a and a > stop then a = nil end
  local b = a and find(batch, '\n', a + 1, true)
  if b and b > stop then b = nil end
  local c = b and find(batch, '\n', b + 1, true)
  if c and c > stop then c = nil end
  local k = s and tonumber(sub(batch, pos, s - 1))
  local result = ''
  if k and KEYS[k] and k > 1 and not failed[k] then
    if c then
      local id, name, at, data = sub(batch, s + 1, a - 1), sub(batch, a + 1, b - 1), sub(batch, b + 1, c - 1), sub(batch, c + 1, stop - 1)
      local r = redis.pcall('XADD', KEYS[k], 'NOMKSTREAM', 'MAXLEN', '~', history, id, 'n', name, 'd', data, 't', at)
      if not r then
        -- no stream (new, or expired): make it, and give it its expiry whatever was asked
        r = redis.pcall('XADD', KEYS[k], 'MAXLEN', '~', history, id, 'n', name, 'd', data, 't', at)
        expire[k] = true
      end
      if type(r) == 'string' then
        result = r
        added[k] = true
        local user = users[k]
        if not user then
          user = sub(KEYS[k], skip + 1)
          users[k] = user
        end
        -- the entry text "<id>\n<name>\n<time>\n<data>" is stop - 1 - s bytes
        if stop - 1 - s <= carry then
          records[#records + 1] = user .. '\n' .. id .. '\n' .. name .. '\n' .. at .. '\n' .. data
        else
          records[#records + 1] = user
        end
      elseif type(r) == 'table' and r.err and string.find(r.err, 'equal or smaller', 1, true) then
        result = '='
      else
        failed[k] = true
      end
    else
      failed[k] = true
    end
  end
  results[#results + 1] = result
  pos = stop + 1
end
for k = 2, #KEYS do
  if added[k] and (expire[k] or string.byte(refresh, k - 1) == 49) then
    redis.call('PEXPIRE', KEYS[k], ttl)
  end
end
if #records > 0 then redis.call('PUBLISH', KEYS[1], table.concat(records, '\30')) end
return table.concat(results, ',')
