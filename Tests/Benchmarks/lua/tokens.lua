-- wrk script for the token scenarios. Arguments (after `--`):
--   1: a file with one bearer token per line
--   2: "rotate" (cycle through the tokens: each is reused, so the gateway's token cache helps) or
--      "fresh" (each token is sent once; the thread stops when they run out, so no cache can help)
--   3: the Origin header to send (CORS runs on every request), or "-" for none
--   4: the Host header to send
--   5: the number of wrk threads (-t), so that fresh tokens are split between threads
-- Every request string is formatted once in init(), so the per-request cost on the client is a table index.
-- Status codes are counted in response() and printed by done() as one "statuses:" line for run.sh.
-- wrk's own req/s divides by the whole -d duration even when a "fresh" thread ran out of tokens early, so the
-- script also reports "active:", the seconds from the first request to the last response (LuaJIT's FFI clock).

local requests = {}
local next_index = 1
local mode = "rotate"
-- Globals, not locals: done() reads them from each thread with thread:get().
counts = {}
first_us = nil
last_us = nil

local now_us = nil
do
    local ok, ffi = pcall(require, "ffi")
    if ok then
        ffi.cdef([[
            typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
            int clock_gettime(int clock_id, bench_timespec *tp);
        ]])
        local ts = ffi.new("bench_timespec")
        now_us = function()
            ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
            return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
        end
    end
end

function init(args)
    local file = args[1]
    mode = args[2] or "rotate"
    local origin = args[3] or "-"
    local host = args[4]
    local headers = {}
    if origin ~= "-" then headers["Origin"] = origin end
    if host then headers["Host"] = host end
    -- Threads start on different tokens, so two threads never send the same fresh token.
    local thread_count = tonumber(args[5] or "1")
    local thread_index = tid or 0
    local n = 0
    for line in io.lines(file) do
        if #line > 0 then
            n = n + 1
            if mode == "rotate" or (n - 1) % thread_count == thread_index then
                headers["Authorization"] = "Bearer " .. line
                requests[#requests + 1] = wrk.format("GET", wrk.path, headers)
            end
        end
    end
    if #requests == 0 then error("no tokens in " .. file) end
end

function request()
    if first_us == nil and now_us then first_us = now_us() end
    local r = requests[next_index]
    next_index = next_index + 1
    if next_index > #requests then
        if mode == "fresh" then
            wrk.thread:stop()
            next_index = #requests
        else
            next_index = 1
        end
    end
    return r
end

function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
    if now_us then last_us = now_us() end
end

local threads = {}

-- setup() runs in the main state before each thread's init(): it hands the thread its index.
function setup(thread)
    thread:set("tid", #threads)
    threads[#threads + 1] = thread
end

function done(summary, latency, requests_)
    local total = {}
    local first, last = nil, nil
    for _, t in ipairs(threads) do
        local c = t:get("counts")
        if c then
            for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
        end
        local f, l = t:get("first_us"), t:get("last_us")
        if f and (first == nil or f < first) then first = f end
        if l and (last == nil or l > last) then last = l end
    end
    if first and last and last > first then
        io.write(string.format("active: %.6f\n", (last - first) / 1000000))
    end
    local parts = {}
    for k, v in pairs(total) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
    table.sort(parts)
    io.write("statuses: " .. table.concat(parts, " ") .. "\n")
end
