-- Batches of events to /api/ingest/batch with X-Api-Key. The body is generated once.
local key = os.getenv("BOING_API_KEY") or "none"
local n = tonumber(os.getenv("BATCH_SIZE") or "1000")
local items = {}
for i = 1, n do
  items[i] = '{"timestamp":1764050000.5,"method":"GET","endpoint":"/api/items/' .. i ..
             '","client_ip":"10.0.' .. (i % 250) .. '.' .. (i % 200) ..
             '","headers":{"Host":"shop.example"},"status_code":200,"latency_ms":3.25,"body_size":120}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = key
wrk.body = "[" .. table.concat(items, ",") .. "]"
local failed = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"rejected":0}', 1, true) then failed = failed + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("non2xx %d\n", failed))
end
