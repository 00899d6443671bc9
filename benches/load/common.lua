-- Shared by authorize.lua and ext_authz.lua (loaded with dofile).
--
-- Counts every non-2xx answer per thread in the response() hook, keeps the
-- first error's status and body, and prints one machine-readable RESULT
-- line in done() that run.sh parses. A proof of possession can be used
-- once, so proof files are split between threads by line number and no
-- proof is ever sent twice; when a thread runs out it stops and the run is
-- reported as exhausted (run.sh then fails).

local M = {}

local threads = {}

-- Called once per thread, in the main Lua state, before the thread's init().
function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

-- Per-thread counters (each wrk thread has its own Lua state).
non2xx = 0
status_counts = {}
first_error = ""
exhausted = 0

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      status_counts[status] = (status_counts[status] or 0) + 1
      if first_error == "" then
         -- The reason first: a decision body is long, and why is what matters.
         local reason = string.match(body or "", '"reason":"[^"]*"') or ""
         first_error = tostring(status) .. " " .. reason .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

-- Lines of `path` numbered i (1-based) with (i - 1) % nthreads == id.
function M.load_lines(path, id, nthreads)
   local lines = {}
   local f = assert(io.open(path, "r"), "cannot open " .. path)
   local i = 0
   for line in f:lines() do
      if i % nthreads == id and line ~= "" then
         lines[#lines + 1] = line
      end
      i = i + 1
   end
   f:close()
   return lines
end

function M.read_file(path)
   local f = assert(io.open(path, "r"), "cannot open " .. path)
   local text = f:read("*a")
   f:close()
   return (string.gsub(text, "%s+$", ""))
end

-- The request to send once a thread has used all its proofs: a health check,
-- never a proof twice. The thread stops; run.sh fails the case.
function M.exhausted_request()
   if exhausted == 0 then
      exhausted = 1
      wrk.thread:stop()
   end
   return wrk.format("GET", "/v1/health", {}, nil)
end

-- WRK_PACE_MS=N: each connection waits N ms after an answer before its next
-- request, so the offered load is about connections / (N ms + latency):
-- a paced run compares CPU per request at (nearly) equal throughput.
local pace = tonumber(os.getenv("WRK_PACE_MS") or "")
if pace and pace > 0 then
   function delay()
      return pace
   end
end

function done(summary, latency, requests)
   local bad, exhausted_threads, statuses, first = 0, 0, {}, ""
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      exhausted_threads = exhausted_threads + (thread:get("exhausted") or 0)
      local counts = {}
      for k, v in pairs(thread:get("status_counts") or {}) do
         counts[#counts + 1] = tostring(k) .. ":" .. tostring(v)
      end
      if #counts > 0 then
         statuses[#statuses + 1] = table.concat(counts, ",")
      end
      local e = thread:get("first_error") or ""
      if first == "" and e ~= "" then
         first = e
      end
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d exhausted_threads=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean,
      bad, e.connect, e.read, e.write, e.timeout, exhausted_threads))
   if bad > 0 then
      io.write("ERROR_STATUSES " .. table.concat(statuses, ",") .. "\n")
      io.write("FIRST_ERROR " .. string.gsub(first, "\n", " ") .. "\n")
   end
end

return M
