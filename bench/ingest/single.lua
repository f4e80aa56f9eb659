-- One event per request, keep-alive, the shape the seed's instrumentation snippets send to
-- POST /api/ingest. The same script drives the nginx baseline, so method, path, headers and body
-- are identical in both runs. BOING_API_KEY comes from the environment.
-- done() prints "bench_ok N" / "bench_bad N" lines for run.sh.
local key = os.getenv("BOING_API_KEY") or "none"
local ts = os.time()

wrk.method = "POST"
wrk.path = "/api/ingest"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"api_key":"' .. key .. '","timestamp":' .. ts .. '.25,"method":"GET",' ..
           '"endpoint":"/api/users/42","client_ip":"203.0.113.9",' ..
           '"headers":{"Host":"shop.example","User-Agent":"bench/1.0","Accept":"application/json"},' ..
           '"status_code":200,"latency_ms":12.5,"body_size":0,"response_size":512,' ..
           '"user_agent":"bench/1.0","host":"shop.example"}'

-- No response() hook: it would make wrk run Lua for every answer, and on one core wrk is then the
-- bottleneck of the nginx baseline. wrk counts answers outside 2xx/3xx itself (errors.status);
-- neither server sends 3xx here.
function done(summary, latency, requests)
  -- os.clock() is wrk's CPU time over all its threads: shows whether the load generator was the
  -- bottleneck.
  io.write(string.format("bench_wrk_cpu_pct %d\n", math.floor(os.clock() * 1e8 / summary.duration)))
  local bad = summary.errors.status
  io.write(string.format("bench_ok %d\nbench_bad %d\nbench_body_bytes %d\n",
                         summary.requests - bad, bad, #wrk.body))
end
