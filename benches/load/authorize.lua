-- wrk script for POST /v1/authorize (JSON body, see AuthorizeRequest in
-- crates/mandate-verifier/src/http.rs).
--
--   wrk ... -s authorize.lua URL/v1/authorize -- bearer BODY_FILE
--       the same body every time (warm: the verifier's caches hit)
--   wrk ... -s authorize.lua URL/v1/authorize -- pop TEMPLATE_FILE PROOFS_FILE NTHREADS
--       TEMPLATE_FILE is the JSON body with the placeholder @POP@ where the
--       proof goes; PROOFS_FILE has one proof per line, each sent once.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local prefix, suffix, proofs, next_proof

function init(args)
   local mode = args[1]
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if mode == "bearer" then
      wrk.body = common.read_file(args[2])
   elseif mode == "pop" then
      local template = common.read_file(args[2])
      local at = assert(string.find(template, "@POP@", 1, true), "no @POP@ in template")
      prefix = string.sub(template, 1, at - 1)
      suffix = string.sub(template, at + 5)
      proofs = common.load_lines(args[3], id, tonumber(args[4]))
      next_proof = 0
      -- Defined only in this mode: without request() wrk sends one
      -- pre-built request, which is what the bearer case wants.
      request = function()
         next_proof = next_proof + 1
         local proof = proofs[next_proof]
         if proof == nil then
            return common.exhausted_request()
         end
         return wrk.format(nil, nil, nil, prefix .. proof .. suffix)
      end
   else
      error("mode must be bearer or pop, got " .. tostring(mode))
   end
end
