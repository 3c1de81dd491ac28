-- wrk script: POST /api/v1/requests creating maintenance requests on object 1 (seeded by
-- `ferum bench-seed`, in exactly one active project). The bearer token comes from the
-- BENCH_TOKEN environment variable; the summary line comes from report.lua next to this file.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local token = os.getenv("BENCH_TOKEN")
if token == nil or token == "" then
   error("set BENCH_TOKEN to an access token (e.g. the seeded admin's)")
end

wrk.method = "POST"
wrk.body = '{"type":"maintenance","subject":"bench","object_id":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
