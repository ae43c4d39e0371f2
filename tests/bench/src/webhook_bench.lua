-- wrk script for the webhook benchmark. The Rust side prepends:
--   bodies = { [==[...]==], ... }  Alertmanager bodies with __SEQ__ in every fingerprint
--   auth = "Bearer ..." (or "")     the Authorization header
-- Every 4th request repeats the previous delivery exactly: a duplicate, as a retried or
-- re-sent Alertmanager notification would be.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  accepted = 0
  duplicates = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if auth ~= "" then
    wrk.headers["Authorization"] = auth
  end
end

function request()
  counter = counter + 1
  local seq = counter
  if counter % 4 == 0 then
    seq = counter - 1
  end
  local template = bodies[(seq % #bodies) + 1]
  local body = template:gsub("__SEQ__", string.format("%02x%06x", id % 256, seq % 16777216))
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  local a = body:match('"accepted":(%d+)')
  local d = body:match('"duplicates":(%d+)')
  if a then accepted = accepted + tonumber(a) end
  if d then duplicates = duplicates + tonumber(d) end
end

function done(summary, latency, requests)
  local acc, dup = 0, 0
  for _, t in ipairs(threads) do
    acc = acc + (t:get("accepted") or 0)
    dup = dup + (t:get("duplicates") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d " ..
    "socket_errors=%d accepted=%d duplicates=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, acc, dup))
end
