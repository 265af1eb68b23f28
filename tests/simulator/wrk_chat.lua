-- wrk script: POST a chat completion to bigmodel_simulator.
--   wrk -t2 -c64 -d10s -s tests/simulator/wrk_chat.lua http://127.0.0.1:PORT
-- Environment: BIGMODEL_API_KEY (bearer token, default "bench-key"), WRK_MODEL (default glm-4.5-air),
-- WRK_TOPIC (default "benchmark topic"; may carry a [[fault:NAME]] marker), WRK_STREAM=1 for SSE.
local key = os.getenv("BIGMODEL_API_KEY") or "bench-key"
local model = os.getenv("WRK_MODEL") or "glm-4.5-air"
local topic = os.getenv("WRK_TOPIC") or "benchmark topic"
local stream = os.getenv("WRK_STREAM") == "1"

wrk.method = "POST"
wrk.path = "/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = string.format(
  '{"model":"%s","stream":%s,"temperature":0.6,"messages":[' ..
  '{"role":"system","content":"You are a concise research assistant."},' ..
  '{"role":"user","content":"%s"}]}',
  model, stream and "true" or "false", topic)
