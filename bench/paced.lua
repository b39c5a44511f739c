-- wrk at a fixed overall request rate, for "p99 at 80% of peak" (wrk alone sends as fast as it can).
-- Each wrk thread hands out send slots `interval` seconds apart to its connections: a request whose
-- slot is in the future waits (wrk's delay(), whole milliseconds); one whose slot is past goes at once,
-- so the schedule catches up and the long-run rate is exact.
--   wrk -t2 -c32 -d10s --latency -s paced.lua URL -- <requests per second per thread>
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } fh_timespec;
  int clock_gettime(int clk_id, fh_timespec *tp);
]]
local ts = ffi.new("fh_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local interval, next_at

function init(args)
  interval = 1 / tonumber(args[1])
end

function delay()
  local t = now()
  if next_at == nil then next_at = t end
  next_at = next_at + interval
  local wait = (next_at - t) * 1000
  if wait < 1 then return 0 end
  return math.floor(wait)
end
