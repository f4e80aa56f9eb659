-- wrk script for the bpf tests and bench/agent: every request has its own path,
-- PREFIX/<thread>/<n>, and carries a bearer token when one is given:
--   wrk ... -s wrk_paths.lua URL -- TOKEN [PREFIX]     (TOKEN "-": no Authorization header;
--                                                        PREFIX defaults to /wrk)
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  n = 0
  headers = {}
  if args[1] and args[1] ~= "-" then
    headers["Authorization"] = "Bearer " .. args[1]
  end
  base = (args[2] or "/wrk") .. "/" .. id .. "/"
end

function request()
  n = n + 1
  return wrk.format("GET", base .. n, headers)
end
