-- wrk script: POST the body in BODY_FILE; optional fixed pause per request (DELAY_MS) to hold
-- a lower request rate; prints a JSON summary line (latency in microseconds).
local body_file = os.getenv("BODY_FILE")
local f = assert(io.open(body_file, "rb"))
wrk.method = os.getenv("METHOD") or "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/json"
local api_key = os.getenv("API_KEY")
if api_key and api_key ~= "" then wrk.headers["X-API-Key"] = api_key end
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")

if delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean, e.status,
    e.connect, e.read, e.write, e.timeout))
end
