-- Makes wrk print its summary as one JSON line, so the harness reads exact
-- counts and percentiles instead of wrk's rounded human-readable output.
-- Only done() is defined: a response() hook would run Lua on every response
-- and lower the ceiling the harness can measure.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_SUMMARY {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
