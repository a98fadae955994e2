-- wrk's result as one JSON line, for benchmarks/hot_path.py to read instead of its text.
-- Only `done` is defined: a `response` hook would make wrk keep every body it reads.
-- summary.errors.status counts answers with a status of 400 or more, which wrk's report
-- calls "Non-2xx or 3xx responses".

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRK_SUMMARY {\"requests\": %d, \"bytes\": %d, \"duration_us\": %d, "
      .. "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, "
      .. "\"timeout\": %d}, \"latency_p50_us\": %d, \"latency_p99_us\": %d, "
      .. "\"latency_max_us\": %d}\n",
    summary.requests, summary.bytes, summary.duration,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max
  ))
end
