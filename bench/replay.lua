-- wrk script for bench/webhooks.py: replay pre-signed Twilio webhook requests.
--
--   wrk ... -s bench/replay.lua http://127.0.0.1:PORT -- DATA MODE HOST
--
-- DATA: one request a line, "path<TAB>X-Twilio-Signature<TAB>form body". Every line is
-- turned into a raw HTTP request once, in init(), so request() is a table lookup.
-- MODE:
--   once   send every request exactly once, in file order; when all of them are answered
--          print BENCH_ONCE_DONE and stop (connections that run dry meanwhile poll
--          GET /healthz; those answers are not counted as pool answers);
--   timed  send every request at most once, in file order, for wrk's -d duration; if the
--          pool runs dry, GET /__bench_pool_exhausted (a 404, counted) so it shows;
--   cycle  loop over the pool (the bare baseline, which keeps no state).
-- HOST: the Host header.
--
-- Each response is classified: 2xx with "<Gather" (a real menu step answer), 2xx without,
-- non-2xx. done() prints one line "BENCH_JSON {...}" for the Python side.

local reqs = {}
local n = 0
local i = 0
local mode = "timed"
local filler, sentinel
local finished = false
local primed = false

-- globals: read from done() through thread:get()
gather = 0
other2xx = 0
non2xx = 0
filler_ok = 0
exhausted = 0
pool_answered = 0

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local data, host = args[1], args[3]
  mode = args[2] or "timed"
  for line in io.lines(data) do
    local path, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    if path then
      n = n + 1
      reqs[n] = wrk.format("POST", path, {
        ["Host"] = host,
        ["User-Agent"] = "TwilioProxy/1.1",
        ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8",
        ["X-Twilio-Signature"] = sig,
      }, body)
    end
  end
  filler = wrk.format("GET", "/healthz", {["Host"] = host}, nil)
  sentinel = wrk.format("GET", "/__bench_pool_exhausted", {["Host"] = host}, nil)
end

function request()
  if not primed then
    -- wrk calls request() once right after init() to check for pipelining and throws
    -- the result away: give it a filler, not a pool request.
    primed = true
    return filler
  end
  i = i + 1
  if i <= n then
    return reqs[i]
  end
  if mode == "cycle" then
    i = 1
    return reqs[1]
  end
  if mode == "once" then
    return filler
  end
  exhausted = exhausted + 1
  return sentinel
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    if body:find("<Gather", 1, true) then
      gather = gather + 1
      pool_answered = pool_answered + 1
    elseif body:find('{"status":"ok"}', 1, true) then
      filler_ok = filler_ok + 1
    else
      other2xx = other2xx + 1
      pool_answered = pool_answered + 1
    end
  else
    non2xx = non2xx + 1
    pool_answered = pool_answered + 1
  end
  if mode == "once" and pool_answered >= n and not finished then
    -- wrk's main thread sleeps for all of -d whatever the threads do: tell the Python
    -- side, which sends wrk SIGINT (wrk then reports as usual).
    finished = true
    io.write("BENCH_ONCE_DONE\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local c = {gather = 0, other2xx = 0, non2xx = 0, filler_ok = 0, exhausted = 0,
             pool_answered = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(c) do
      c[k] = c[k] + (t:get(k) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"counts":{"gather":%d,"other2xx":%d,"non2xx":%d,"filler_ok":%d,"exhausted":%d,' ..
    '"pool_answered":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    c.gather, c.other2xx, c.non2xx, c.filler_ok, c.exhausted, c.pool_answered,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
