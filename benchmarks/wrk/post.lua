-- wrk POST script: the body comes from the file named by WRK_BODY, an optional bearer key from WRK_KEY.
--   WRK_BODY=body.json WRK_KEY=secret wrk -t1 -c8 -d10s --latency -s benchmarks/wrk/post.lua http://127.0.0.1:8000/predict
-- With WRK_BODIES=bodies.jsonl instead (one JSON body per line) the requests take the bodies in turn.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

local many = os.getenv("WRK_BODIES")
if many ~= nil and many ~= "" then
  local bodies = {}
  for line in io.lines(many) do
    if line ~= "" then
      bodies[#bodies + 1] = line
    end
  end
  assert(#bodies > 0, "WRK_BODIES names an empty file")
  local next_body = 0
  function request()
    next_body = next_body % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[next_body])
  end
else
  local file = assert(io.open(os.getenv("WRK_BODY"), "rb"), "set WRK_BODY to a JSON file (or WRK_BODIES)")
  wrk.body = file:read("*a")
  file:close()
end

local failures = 0
function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if failures <= 3 then
      io.stderr:write("non-200 response " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end
