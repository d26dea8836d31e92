-- wrk script: POST /rest/v1/ai-agent/api/tools/search_knowledge_base/execute with realistic
-- questions, rotating through the list below. Each wrk thread starts at a different offset so
-- that concurrent connections do not ask the same question in lockstep.
--
-- The API key comes from the environment: BENCH_API_KEY=... wrk -s bench/search.lua URL
-- The URL must be the full execute URL (wrk.path is used as the request path).

local questions = {
  "how to create a REST API connection",
  "schedule a flow every hour",
  "fix 401 unauthorized",
  "load CSV files into PostgreSQL",
  "paginate a REST API with a cursor",
  "flatten nested JSON into columns",
  "rotate my API key",
  "what does 403 forbidden mean",
  "retry a failed flow run",
  "map columns from the source to the destination table",
  "upsert rows without creating duplicates",
  "connect to a SQLite database",
  "incremental load of only the changed records",
  "stream chat responses with server-sent events",
  "back up and restore the data directory",
  "429 too many requests from Salesforce",
  "create a support ticket in Zendesk",
  "use my own OpenAI key",
  "run several replicas on PostgreSQL",
  "import Markdown articles into the knowledge base",
  "timeout when connecting to Snowflake",
  "how do I conect to postgres",
}

local key = os.getenv("BENCH_API_KEY")
if key == nil or key == "" then
  error("BENCH_API_KEY is not set")
end

local function json_string(s)
  return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

local thread_count = 0
function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

local requests = {}
local next_index = 1

function init(args)
  local headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
  }
  for i, q in ipairs(questions) do
    requests[i] = wrk.format("POST", wrk.path, headers, '{"query": ' .. json_string(q) .. '}')
  end
  -- thread_index is set by setup() in the main Lua state and copied into this thread's state.
  next_index = ((thread_index or 0) * 7) % #requests + 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end
