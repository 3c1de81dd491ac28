-- Shared wrk summary for the Ferum benchmark: one parseable line of key=value pairs.
--
--   BENCH requests=N duration_s=S rps=R p50_ms=A p99_ms=B mean_ms=C max_ms=D non2xx=E socket_errors=F
--
-- wrk measures latency in microseconds; `non2xx` counts responses with a status of 400 or more
-- (wrk's "status" errors), `socket_errors` connect, read, write and timeout errors.
-- Load it with `-s bench/report.lua`, or `dofile` it from another wrk script (see create.lua).

function done(summary, latency, requests)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
      summary.requests,
      seconds,
      summary.requests / seconds,
      latency:percentile(50) / 1000,
      latency:percentile(99) / 1000,
      latency.mean / 1000,
      latency.max / 1000,
      e.status,
      e.connect + e.read + e.write + e.timeout
   ))
end
