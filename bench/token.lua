-- wrk script for bench/run.sh: POSTs a token request and counts every non-2xx response.
--
-- Script arguments (after `--`), key=value:
--   body=STRING         form body (without the assertion)
--   auth=STRING         Authorization header value (Basic scenarios)
--   assertions=PATH     client_secret_jwt mode: one pre-minted assertion per line; each
--                       request uses the next unused one (a jti is single-use, so a
--                       reused assertion is a replay and gets 401). Thread k of n takes
--                       lines k, k+n, k+2n, ...; running out is counted as `exhausted`
--                       and the last assertion is re-sent (the 401s make the run invalid).
--   threads=N           number of wrk threads (to split the assertion file)
--   delay_ms=N          fixed-rate mode: wait N ms after each response before the next
--                       request on that connection (rate ~= connections * 1000 / N when
--                       latency << N; plain wrk has no open-loop fixed-rate mode)
--
-- Every scenario goes through request() and response() so that the load generator does
-- the same Lua work per request whatever the scenario (jwt cannot use a static request).
-- done() prints one machine-readable line starting with WRKRESULT.

local threads = {}
local thread_count = 0

function setup(thread)
  -- The URL names `localhost` so that TLS carries a DNS name as SNI (an IP literal is
  -- not a legal SNI); BENCH_CONNECT pins the address actually dialled.
  local connect = os.getenv("BENCH_CONNECT")
  if connect and connect ~= "" then
    local addrs = wrk.lookup(connect, tostring(wrk.port or (wrk.scheme == "https" and 443 or 80)))
    if not addrs or #addrs == 0 then error("cannot resolve " .. connect) end
    thread.addr = addrs[1]
  end
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local function options(args)
  local opt = {}
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then opt[k] = v end
  end
  return opt
end

function init(args)
  local opt = options(args)
  non2xx = 0
  exhausted = 0
  first_bad_status = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Accept"] = "application/json"
  if opt.auth and opt.auth ~= "" then
    wrk.headers["Authorization"] = opt.auth
  end
  local body = opt.body or "grant_type=client_credentials"

  if opt.assertions then
    local n = tonumber(opt.threads or "1")
    local me = thread_index or 0
    local prefix = body ..
      "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer" ..
      "&client_assertion="
    local reqs, i = {}, 0
    for line in io.lines(opt.assertions) do
      if line ~= "" then
        if i % n == me then
          reqs[#reqs + 1] = wrk.format(nil, nil, nil, prefix .. line)
        end
        i = i + 1
      end
    end
    local next_i, count, last = 1, #reqs, nil
    if count == 0 then
      error("no assertions for thread " .. me .. " in " .. opt.assertions)
    end
    request = function()
      if next_i > count then
        exhausted = exhausted + 1
        return last
      end
      local r = reqs[next_i]
      reqs[next_i] = nil -- let the string go once it is sent
      next_i = next_i + 1
      last = r
      return r
    end
  else
    local r = wrk.format(nil, nil, nil, body)
    request = function() return r end
  end

  local d = tonumber(opt.delay_ms or "0")
  if d > 0 then
    delay = function() return d end
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad_status == 0 then first_bad_status = status end
  end
end

function done(summary, latency, requests)
  local bad, ex, first = 0, 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    ex = ex + (t:get("exhausted") or 0)
    local f = t:get("first_bad_status") or 0
    if first == 0 then first = f end
  end
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d rps=%.1f non2xx=%d first_bad_status=%d exhausted=%d " ..
    "connect=%d read=%d write=%d timeout=%d status_gt399=%d " ..
    "lat_mean_us=%.1f lat_p50_us=%d lat_p90_us=%d lat_p99_us=%d lat_p999_us=%d lat_max_us=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    bad, first, ex, e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
