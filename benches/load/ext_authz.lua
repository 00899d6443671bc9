-- wrk script for the ext_authz endpoint (/v1/ext_authz/...): credentials in
-- headers, no body. `Authorization: Mandate <token>`, and in pop mode
-- `Mandate-PoP: <proof>`, each proof sent once.
--
--   wrk ... -s ext_authz.lua URL/v1/ext_authz/PATH -- MODE TOKEN_FILE PROOFS_FILE NTHREADS METHOD [HEADER...]
--       MODE is bearer (PROOFS_FILE is -) or pop; each HEADER is "Name: value"
--       (e.g. how the endpoint is told the service and operation).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local proofs, next_proof

function init(args)
   local mode = args[1]
   wrk.method = args[5] or "GET"
   wrk.headers["Authorization"] = "Mandate " .. common.read_file(args[2])
   for i = 6, #args do
      local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
      assert(name, "header must be 'Name: value': " .. args[i])
      wrk.headers[name] = value
   end
   if mode == "pop" then
      proofs = common.load_lines(args[3], id, tonumber(args[4]))
      next_proof = 0
      request = function()
         next_proof = next_proof + 1
         local proof = proofs[next_proof]
         if proof == nil then
            return common.exhausted_request()
         end
         wrk.headers["Mandate-PoP"] = proof
         return wrk.format()
      end
   elseif mode ~= "bearer" then
      error("mode must be bearer or pop, got " .. tostring(mode))
   end
end
