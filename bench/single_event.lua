-- wrk script: one usage event per request, each with its own event_id.
-- usage: wrk -s single_event.lua URL -- <bearer key> <timestamp> <id prefix> [path]
dofile("histogram.lua")  -- run from bench/: prints every latency for the pooled percentiles
local counter = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  key = args[1]
  ts = args[2]
  prefix = args[3]
  path = args[4] or "/api/v1/events"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"event_id":"%s-%d-%d","timestamp":"%s","model":"gpt-4o","feature":"bench","end_user":"u-%d",' ..
    '"usage":{"prompt_tokens":1200,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":512}}}',
    prefix, tid, counter, ts, counter % 50)
  return wrk.format("POST", path, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end
