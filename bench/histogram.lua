-- Shared by the benchmark's wrk scripts: after the run, every latency wrk recorded (microseconds) with its count,
-- one "latency-histogram <us> <count>" line each, so that bench/run.py takes percentiles over all rounds together.
function done(summary, latency, requests)
  for i = 1, #latency do
    local value, count = latency(i)
    io.write(string.format("latency-histogram %d %d\n", value, count))
  end
end
