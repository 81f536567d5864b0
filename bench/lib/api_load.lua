-- wrk script for bench/server.sh: each request lists the volumes or (one
-- in five) snapshots one of them under a name unique to this thread and
-- request; counts answers that are not 2xx.
local thread_id = 0
local counter = 0
local bad = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end

function request()
  counter = counter + 1
  if counter % 5 == 0 then
    local volume = "v" .. (counter % 100)
    local body = '{"name":"load-' .. id .. '-' .. counter .. '"}'
    return wrk.format("POST", "/api/v1/volumes/" .. volume .. "/snapshots", nil, body)
  end
  return wrk.format("GET", "/api/v1/volumes")
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end
