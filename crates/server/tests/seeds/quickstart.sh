#!/usr/bin/env bash
# The seeds' quick start (steps 2-6) and API-key commands, verbatim; only the URL and key
# come from the environment. Each step's output is framed by a marker line for the test.
set -euo pipefail

echo "=== step 2"
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api/tools" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" | jq .

echo "=== step 3"
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api/tools/search_knowledge_base/execute" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" \
-H "Content-Type: application/json" \
-d '{"query": "how to create a REST API connection"}' | jq .

echo "=== step 4"
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api/chat" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" \
-H "Content-Type: application/json" \
-d '{"message": "How do I set up a daily sync from a REST API to PostgreSQL?"}' | jq .

echo "=== step 5"
curl -sN "$ETLWORKS_URL/rest/v1/ai-agent/api/chat/stream" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" \
-H "Content-Type: application/json" \
-d '{"message": "What are the main features of Etlworks Integrator?"}'

echo "=== step 6"
# Create a session
SESSION_ID=$(curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api/sessions" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" \
-X POST | jq -r '.session_id')
echo "Session: $SESSION_ID"
# First message
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api/sessions/$SESSION_ID/chat" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" \
-H "Content-Type: application/json" \
-d '{"message": "How do I create a REST connection?"}' | jq '.response'
# Follow-up — the agent remembers the first message
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api/sessions/$SESSION_ID/chat" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" \
-H "Content-Type: application/json" \
-d '{"message": "Now how do I schedule it to run daily?"}' | jq '.response'
# Review the full conversation
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api/sessions/$SESSION_ID/messages" \
-H "Authorization: Bearer $ETLWORKS_API_KEY" | jq .

echo "=== api-key set"
# Set your own OpenAI API key
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api-key" \
  -H "Authorization: Bearer $ETLWORKS_API_KEY" \
  -H "Content-Type: application/json" \
  -X POST \
  -d '{"api_key": "sk-your-openai-api-key"}'
echo
echo "=== api-key check"
# Check if a key is configured
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api-key" \
  -H "Authorization: Bearer $ETLWORKS_API_KEY"
echo
echo "=== api-key delete"
# Remove your custom key (reverts to Etlworks-managed billing)
curl -s "$ETLWORKS_URL/rest/v1/ai-agent/api-key/delete" \
  -H "Authorization: Bearer $ETLWORKS_API_KEY" \
  -X POST
echo
echo "=== done"
