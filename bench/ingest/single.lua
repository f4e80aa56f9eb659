-- One event per request to /api/ingest (the seed's snippet shape), keep-alive.
-- BOING_API_KEY comes from the environment; non-2xx responses are counted.
local key = os.getenv("BOING_API_KEY") or "none"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"api_key":"' .. key .. '","timestamp":1764050000.5,"method":"GET",' ..
           '"endpoint":"/api/users/42","client_ip":"203.0.113.9",' ..
           '"headers":{"Host":"shop.example","User-Agent":"bench"},' ..
           '"status_code":200,"latency_ms":12.5,"body_size":0}'
local failed = 0
function response(status, headers, body)
  if status < 200 or status > 299 then failed = failed + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("non2xx %d\n", failed))
end
