-- Batches of BATCH_SIZE events (JSON array) to POST /api/ingest/batch, authenticated with the
-- X-Api-Key header. The body is generated once per thread before the run starts; the events differ
-- in endpoint and client IP so indexes see realistic keys.
-- A batch counts as ok when the status is 2xx; the "accepted" figure from each answer is summed, so
-- run.sh can report events/s from 2xx batches and check it against the stored count.
local key = os.getenv("BOING_API_KEY") or "none"
local n = tonumber(os.getenv("BATCH_SIZE") or "1000")
local ts = os.time()
local methods = { "GET", "GET", "GET", "POST", "PUT", "DELETE" }
local items = {}
for i = 1, n do
  items[i] = '{"timestamp":' .. ts .. '.' .. string.format("%03d", i % 1000) ..
             ',"method":"' .. methods[i % #methods + 1] .. '","endpoint":"/api/items/' .. i ..
             '","client_ip":"10.0.' .. (i % 250) .. '.' .. (i % 200 + 1) ..
             '","headers":{"Host":"shop.example","User-Agent":"bench/1.0"},' ..
             '"status_code":' .. (i % 20 == 0 and 404 or 200) ..
             ',"latency_ms":3.25,"body_size":120,"response_size":512}'
end

wrk.method = "POST"
wrk.path = "/api/ingest/batch"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = key
wrk.body = "[" .. table.concat(items, ",") .. "]"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

ok = 0
bad = 0
accepted = 0
rejected = 0
function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    local a = string.match(body, '"accepted":(%d+)')
    local r = string.match(body, '"rejected":(%d+)')
    accepted = accepted + (tonumber(a) or 0)
    rejected = rejected + (tonumber(r) or 0)
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  -- os.clock() is wrk's CPU time over all its threads: shows whether the load generator was the
  -- bottleneck.
  io.write(string.format("bench_wrk_cpu_pct %d\n", math.floor(os.clock() * 1e8 / summary.duration)))
  local o, b, a, r = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
    a = a + t:get("accepted")
    r = r + t:get("rejected")
  end
  io.write(string.format("bench_ok %d\nbench_bad %d\nbench_accepted %d\nbench_rejected %d\n" ..
                         "bench_body_bytes %d\n", o, b, a, r, #wrk.body))
end
