-- wrk reporter for benches/compare/compare.py: one JSON line after wrk's own
-- output with the totals, wrk's latency percentiles (microseconds) and the
-- latency histogram itself.
--
-- wrk 4 corrects its latency histogram for coordinated omission before
-- done() runs: for every request that took at least twice the mean interval
-- it adds synthetic samples, as if a client had kept sending at a constant
-- rate. compare.py undoes that correction from the histogram to also report
-- the latency each request really had. The histogram is read straight from
-- wrk's `stats` struct (count, limit, min, max, data[]) through LuaJIT's FFI;
-- if the layout does not match, "histogram" is null and only wrk's corrected
-- percentiles are reported.
local ffi = require("ffi")

local function histogram(latency)
  local ok, result = pcall(function()
    local s = ffi.cast("uint64_t **", latency)[0]
    local count, min, max = tonumber(s[0]), tonumber(s[2]), tonumber(s[3])
    if count == 0 or min ~= latency.min or max ~= latency.max then
      return nil
    end
    local bins, total = {}, 0
    for v = min, max do
      local n = tonumber(s[4 + v])
      if n ~= 0 then
        bins[#bins + 1] = string.format("[%d,%d]", v, n)
        total = total + n
      end
    end
    if total ~= count then
      return nil
    end
    return "[" .. table.concat(bins, ",") .. "]"
  end)
  return ok and result or nil
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"histogram": %s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, histogram(latency) or "null"))
end
