-- Appends a batch in one round trip, atomically: per event XADD with its own
-- id ("<seq>-0", from the outbox) and the approximate trim, then each
-- stream's expiry, and ONE notification for the batch, published in the
-- same script so it follows its entries exactly: a record per event added
-- (the event itself unless its data is large), records joined by
-- RECORD_SEPARATOR (notification.ts).
-- KEYS: the channel, then the batch's streams. ARGV: history, ttl ms, largest
-- entry carried, the length of the stream keys' prefix (a key is that prefix
-- and the user id), one character per stream ('1': refresh its expiry), then
-- per event: its stream's index in KEYS and its text, "<id>\n" followed by
-- the entry text (entry.ts), which the script splits into the stream entry's
-- fields; a record carries "<user>\n" and the text as it is. Every argument
-- per event counts here: the batch is encoded in JavaScript and converted
-- again for each call inside the script. A stream the script creates always
-- gets its expiry (XADD NOMKSTREAM tells), so no stream is ever left without
-- one.
-- Per event the script returns its id when it added it, '=' when the stream
-- already holds that id or a newer one (Redis refuses an id that is not
-- above the stream's top: an event relayed twice is refused, not
-- duplicated), and '' when it failed. XADD runs under redis.pcall: one that
-- fails (a key holding something other than a stream: WRONGTYPE, refused
-- before anything is written) cannot stop the script between an entry and
-- its notification, and fails only the rest of its own stream's events in
-- this batch, so a stream never gets a later event before an earlier one.
local history, ttl, carry, skip, refresh = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local results, records, users, failed, added, expire = {}, {}, {}, {}, {}, {}
for i = 6, #ARGV, 2 do
  local k, text = tonumber(ARGV[i]), ARGV[i + 1]
  local a = string.find(text, '\n', 1, true)
  local b = a and string.find(text, '\n', a + 1, true)
  local c = b and string.find(text, '\n', b + 1, true)
  local result = ''
  if c and not failed[k] then
    local id, name, at, data = string.sub(text, 1, a - 1), string.sub(text, a + 1, b - 1), string.sub(text, b + 1, c - 1), string.sub(text, c + 1)
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
        user = string.sub(KEYS[k], skip + 1)
        users[k] = user
      end
      if #text <= carry then
        records[#records + 1] = user .. '\n' .. text
      else
        records[#records + 1] = user
      end
    elseif type(r) == 'table' and r.err and string.find(r.err, 'equal or smaller', 1, true) then
      result = '='
    else
      failed[k] = true
    end
  end
  results[#results + 1] = result
end
for k = 2, #KEYS do
  if added[k] and (expire[k] or string.byte(refresh, k - 1) == 49) then
    redis.call('PEXPIRE', KEYS[k], ttl)
  end
end
if #records > 0 then redis.call('PUBLISH', KEYS[1], table.concat(records, '\30')) end
return results
