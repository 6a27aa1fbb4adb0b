-- wrk script for the benchmark harness. Configured by environment variables:
--   BENCH_BODY              a JSON body: the request becomes a POST with Content-Type application/json
--   BENCH_ACCEPT_ENCODING   an Accept-Encoding header (e.g. gzip)
--   BENCH_MAX_REQUESTS      a hard cap on requests per wrk thread (the run also stops at -d)
-- At the end it prints one line, BENCH_JSON {...}, with every number the harness keeps.

local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
    wrk.method = "POST"
    wrk.body = body
    wrk.headers["Content-Type"] = "application/json"
end
local encoding = os.getenv("BENCH_ACCEPT_ENCODING")
if encoding ~= nil and encoding ~= "" then
    wrk.headers["Accept-Encoding"] = encoding
end

local cap = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "") or 0
local sent = 0
local prepared = nil

request = function()
    sent = sent + 1
    if cap > 0 and sent > cap then
        wrk.thread:stop()
    end
    if prepared == nil then
        prepared = wrk.format()
    end
    return prepared
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
