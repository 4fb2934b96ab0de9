-- wrk script: a gateway's quota check before an LLM call.
-- usage: wrk -s quota_check.lua URL -- <bearer key> [path]
dofile("histogram.lua")  -- run from bench/: prints every latency for the pooled percentiles
function init(args)
  key = args[1]
  path = args[2] or "/api/v1/quota/check"
end

function request()
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key},
    '{"model":"gpt-4o","estimated_tokens":1200}')
end
