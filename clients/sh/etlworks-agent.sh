#!/usr/bin/env bash
# etlworks-agent.sh: command-line client for the Integrator Agent (Etlworks AI Agent) API.
# Needs bash, curl and jq. The server URL and API key come from ETLWORKS_URL and ETLWORKS_API_KEY.
#
#   ./etlworks-agent.sh tools
#   ./etlworks-agent.sh tool search_knowledge_base '{"query": "REST connection"}'
#   ./etlworks-agent.sh chat "How do I create a connection?"
#   ./etlworks-agent.sh chat-stream "How do I schedule a flow?"
#   SESSION=$(./etlworks-agent.sh session-create)
#   ./etlworks-agent.sh session-chat "$SESSION" "Create a connection to api.example.com"
#   ./etlworks-agent.sh session-chat-stream "$SESSION" "Now schedule it to run every hour"
#   ./etlworks-agent.sh session-messages "$SESSION"
#   ./etlworks-agent.sh session-chat-stream --on-disconnect continue "$SESSION" "A long answer"
#   ./etlworks-agent.sh resume "$SESSION" --after 0123456789abcdef0123456789abcdef:7
#
# Exit status: 0 on success, 1 when the server reports an error (HTTP 4xx/5xx, {"success": false},
# an error event in a stream) or cannot be reached, 2 for a usage error. Errors are one line on
# stderr.

set -euo pipefail

PROG="etlworks-agent.sh"
VERSION="1.1.0"
API_PATH="/rest/v1/ai-agent/api"
KEY_PATH="/rest/v1/ai-agent/api-key"
TIMEOUT="${ETLWORKS_TIMEOUT:-600}"
RAW_JSON=0
INCLUDE_TOOLS=true
SYSTEM_PROMPT=""
HAVE_SYSTEM_PROMPT=0
ON_DISCONNECT=""
TMP_DIR=""

usage() {
    cat <<'EOF'
Usage: etlworks-agent.sh [--json] COMMAND [ARGS]

Commands:
  tools                          list the tools
  tool NAME [JSON]               execute a tool with a JSON object of arguments
  chat MSG                       one-shot chat, prints the answer
  chat-stream MSG                one-shot chat, prints tokens as they arrive
  session-create                 create a session and print only its id
  session-chat ID MSG            chat in a session
  session-chat-stream ID MSG     chat in a session, printing tokens as they arrive
  resume ID [--after EVENT_ID]   rejoin the session's running (or latest) turn and print it
                                 as it streams: the events after EVENT_ID (TURN:SEQ, or a bare
                                 event number), or the whole turn
  session-messages ID            print a session's conversation
  sessions [--limit N] [--offset N]   list your sessions, most recent first
  session-delete ID              delete a session
  session-stop ID                stop the generation running in a session
  api-key set KEY | get | delete your own OpenAI key
  usage                          this month's usage, allowance and wallet

Options (anywhere on the line):
  --json               print the server's JSON answer (streams: one JSON event per line)
  --no-tools           chat without tool calls
  --system-prompt TEXT replace the default system prompt
  --on-disconnect cancel|continue
                       what the server does with the turn when this client goes away:
                       cancel it (the default) or let it finish (rejoin it with resume)
  --after EVENT_ID     resume: the id of the last event received
  -h, --help           this help

Environment: ETLWORKS_URL (e.g. https://app.etlworks.com), ETLWORKS_API_KEY,
ETLWORKS_TIMEOUT (seconds to wait for an answer, default 600).
EOF
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage_error() {
    printf '%s: %s (see --help)\n' "$PROG" "$*" >&2
    exit 2
}

cleanup() {
    if [[ -n "$TMP_DIR" && -d "$TMP_DIR" ]]; then
        rm -rf "$TMP_DIR"
    fi
}
trap cleanup EXIT

setup() {
    command -v curl >/dev/null 2>&1 || die "curl is not installed"
    command -v jq >/dev/null 2>&1 || die "jq is not installed (apt install jq, brew install jq)"
    local url="${ETLWORKS_URL:-}"
    [[ -n "${url// /}" ]] || die "ETLWORKS_URL is not set (e.g. export ETLWORKS_URL=https://app.etlworks.com)"
    [[ -n "${ETLWORKS_API_KEY:-}" ]] || die "ETLWORKS_API_KEY is not set"
    url="${url%"${url##*[![:space:]]}"}"   # trailing spaces
    while [[ "$url" == */ ]]; do url="${url%/}"; done
    for suffix in "$API_PATH" "$KEY_PATH" "/rest/v1/ai-agent"; do
        if [[ "$url" == *"$suffix" ]]; then
            url="${url%"$suffix"}"
            break
        fi
    done
    while [[ "$url" == */ ]]; do url="${url%/}"; done
    [[ "$url" =~ ^[Hh][Tt][Tt][Pp][Ss]?:// ]] || die "ETLWORKS_URL must start with http:// or https://: $url"
    BASE_URL="$url"
    TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/etlworks-agent.XXXXXX")"
    # The key goes to curl in a config file, never on its command line (visible to `ps`).
    local key="${ETLWORKS_API_KEY}"
    key="${key//\\/\\\\}"
    key="${key//\"/\\\"}"
    (umask 077 && printf 'header = "Authorization: Bearer %s"\nheader = "User-Agent: etlworks-agent-sh/%s"\n' \
        "$key" "$VERSION" >"$TMP_DIR/curl.conf")
}

# Percent-encodes one path segment.
urlencode() {
    jq -rn --arg v "$1" '$v|@uri'
}

# Prints the one-line error for a failed answer ($1 status, $2 body) and exits 1.
fail_with_body() {
    local status="$1" body="$2" line
    if line=$(jq -er 'if type == "object" and (.error != null) then
                    (if (.error|type) == "object" then (.error.message // (.error|tostring)) else (.error|tostring) end) as $m
                    | ((.code // (if (.error|type) == "object" then .error.code else null end)) // "") as $c
                    | (if $c != "" then $c + ": " else "" end) + $m
                  else empty end' <<<"$body" 2>/dev/null); then
        :
    else
        line="$(printf '%s' "$body" | head -n 1 | cut -c1-200)"
        [[ -n "$line" ]] || line="no details"
    fi
    if [[ "$status" -ge 400 ]]; then
        die "HTTP $status $line"
    fi
    die "$line"
}

# api METHOD BASE PATH [JSON_BODY]: prints the JSON answer; exits 1 on HTTP errors and on
# application-level {"success": false} answers.
api() {
    local method="$1" base="$2" path="$3" data="${4-}" out status body rc=0
    local args=(-sS -X "$method" -K "$TMP_DIR/curl.conf" -H "Accept: application/json"
        --connect-timeout 15 --max-time "$TIMEOUT" -o "$TMP_DIR/body" -w '%{http_code}')
    if [[ -n "$data" ]]; then
        printf '%s' "$data" >"$TMP_DIR/request.json"
        args+=(-H "Content-Type: application/json" --data-binary "@$TMP_DIR/request.json")
    fi
    status=$(curl "${args[@]}" "$BASE_URL$base$path" 2>"$TMP_DIR/curl.err") || rc=$?
    if [[ $rc -ne 0 ]]; then
        die "cannot reach $BASE_URL: $(tr -d '\r' <"$TMP_DIR/curl.err" | head -n 1 | sed 's/^curl: ([0-9]*) //')"
    fi
    body="$(cat "$TMP_DIR/body")"
    if [[ "$status" -ge 400 ]]; then
        fail_with_body "$status" "$body"
    fi
    if ! jq -e . >/dev/null 2>&1 <<<"$body"; then
        die "the server's answer is not JSON (HTTP $status)"
    fi
    if [[ "$(jq -r 'if type == "object" and .success == false then "failed" else "" end' <<<"$body")" == failed ]]; then
        fail_with_body "$status" "$body"
    fi
    printf '%s\n' "$body"
}

chat_body() {
    jq -cn --arg m "$1" --argjson t "$INCLUDE_TOOLS" --argjson hs "$HAVE_SYSTEM_PROMPT" \
        --arg s "$SYSTEM_PROMPT" --arg d "$ON_DISCONNECT" \
        '{message: $m, include_tools: $t}
         + (if $hs == 1 then {system_prompt: $s} else {} end)
         + (if $d != "" then {on_disconnect: $d} else {} end)'
}

# A chat answer carrying "error" is a failed turn.
print_chat() {
    local body="$1"
    if [[ $RAW_JSON -eq 1 ]]; then
        jq . <<<"$body"
    else
        jq -r '.response // ""' <<<"$body"
    fi
    if [[ "$(jq -r 'if (.error // null) != null then "failed" else "" end' <<<"$body")" == failed ]]; then
        fail_with_body 200 "$body"
    fi
}

# Handles one SSE event's data; sets STREAM_DONE=1 after "end"; exits 1 on "error".
# One jq call per event: "TYPE<SOH>TEXT", TEXT being a token's content, a tool's message or
# the session id.
handle_event() {
    local data="$1" out type text
    [[ "$data" == "[DONE]" ]] && return 0
    STREAM_EVENTS=$((STREAM_EVENTS + 1))
    out=$(jq -j '(.type // "message" | tostring) + "\u0001"
        + (if .type == "token" then (.content // "")
           elif .type == "tool_start" then (.message // .tool // "tool")
           elif .type == "session" then (.session_id // "")
           elif .type == "error" then
             (if (.code // "") != "" then .code + ": " else "" end) + (.message // "the agent failed")
             + (if .retryable == true then " (retryable)" else "" end)
           else "" end | tostring)' <<<"$data" 2>/dev/null && printf x) || true
    [[ "$out" == *x ]] || die "unreadable event in the stream: ${data:0:200}"
    out="${out%x}"
    type="${out%%$'\x01'*}"
    text="${out#*$'\x01'}"
    if [[ $RAW_JSON -eq 1 ]]; then
        jq -c . <<<"$data"
    fi
    case "$type" in
        token)
            if [[ $RAW_JSON -eq 0 && -n "$text" ]]; then
                printf '%s' "$text"
                STREAM_WROTE=1
                if [[ "$text" == *$'\n' ]]; then STREAM_NL=1; else STREAM_NL=0; fi
            fi
            ;;
        tool_start)
            if [[ $RAW_JSON -eq 0 ]]; then
                if [[ $STREAM_WROTE -eq 1 && $STREAM_NL -eq 0 ]]; then
                    printf '\n'
                    STREAM_NL=1
                fi
                printf '[%s]\n' "$text" >&2
            fi
            ;;
        session)
            [[ -n "$STREAM_SESSION" ]] || STREAM_SESSION="$text"
            ;;
        end)
            STREAM_DONE=1
            ;;
        error)
            STREAM_DONE=1
            [[ $STREAM_WROTE -eq 1 && $STREAM_NL -eq 0 ]] && printf '\n'
            die "$text"
            ;;
    esac
    return 0
}

# stream PATH [JSON_BODY] [SESSION_ID]: POSTs the body (GET without one) and prints the events
# as they arrive: tokens on stdout, tool progress on stderr. Each event's "id:" line (TURN:SEQ)
# is remembered, so that a stream that breaks off says how to rejoin it (resume ID --after ID).
stream() {
    local path="$1" data="${2-}" line field value status pending_id="" ids=0 curl_rc="" hint=""
    local -a event_data=() request=(-X GET)
    STREAM_DONE=0
    STREAM_WROTE=0
    STREAM_NL=1
    STREAM_SESSION="${3-}"
    STREAM_LAST_ID=""
    STREAM_EVENTS=0
    if [[ -n "$data" ]]; then
        printf '%s' "$data" >"$TMP_DIR/request.json"
        request=(-X POST -H "Content-Type: application/json" --data-binary "@$TMP_DIR/request.json")
    fi
    : >"$TMP_DIR/headers"
    : >"$TMP_DIR/other"
    # Process substitution keeps the loop in this shell; -N prints each piece as it arrives.
    # After the body comes one line "<SOH>CURL_EXIT_STATUS" (glued to a line the body left
    # unfinished, if any).
    while IFS= read -r line; do
        if [[ "$line" == *$'\x01'* ]]; then
            curl_rc="${line##*$'\x01'}"
            line="${line%$'\x01'*}"
            # An unfinished last line: kept from a complete answer, dropped from a broken one;
            # an unfinished id may be cut short, so it is never kept.
            [[ -n "$line" && "$curl_rc" == 0 && "$line" != id:* ]] || break
        fi
        line="${line%$'\r'}"
        if [[ -z "$line" ]]; then
            if [[ ${#event_data[@]} -gt 0 ]]; then
                local joined
                joined="$(printf '%s\n' "${event_data[@]}")"
                event_data=()
                [[ -n "$pending_id" ]] && STREAM_LAST_ID="$pending_id"
                pending_id=""
                handle_event "$joined"
                [[ $STREAM_DONE -eq 1 ]] && break
            fi
            pending_id=""
            continue
        fi
        [[ "$line" == :* ]] && continue
        if [[ "$line" == *:* ]]; then
            field="${line%%:*}"
            value="${line#*:}"
            value="${value# }"
        else
            field="$line"
            value=""
        fi
        case "$field" in
            data) event_data+=("$value") ;;
            id) pending_id="$value"; ids=1 ;;
            event | retry) ;;
            *) printf '%s\n' "$line" >>"$TMP_DIR/other" ;;
        esac
        if [[ -n "$curl_rc" ]]; then break; fi
    done < <(rc=0
        curl -sS -N "${request[@]}" -K "$TMP_DIR/curl.conf" -H "Accept: text/event-stream" \
            --connect-timeout 15 -D "$TMP_DIR/headers" "$BASE_URL$API_PATH$path" \
            2>"$TMP_DIR/curl.err" || rc=$?
        printf '\001%d\n' "$rc")
    # The last event without its blank line: read when the answer was complete (curl's status
    # 0) and the event has its id (or the stream has none); else dropped: it may be cut short,
    # and a rejoin after the last id sends it whole.
    if [[ $STREAM_DONE -eq 0 && ${#event_data[@]} -gt 0 && "$curl_rc" == 0 &&
        (-n "$pending_id" || $ids -eq 0) ]]; then
        [[ -n "$pending_id" ]] && STREAM_LAST_ID="$pending_id"
        handle_event "$(printf '%s\n' "${event_data[@]}")"
    fi
    [[ $STREAM_WROTE -eq 1 && $STREAM_NL -eq 0 ]] && printf '\n'
    [[ $STREAM_DONE -eq 1 ]] && return 0
    status=$(tr -d '\r' <"$TMP_DIR/headers" | awk '/^HTTP\//{s=$2} END{print s}')
    if [[ -z "$status" ]]; then
        die "cannot reach $BASE_URL: $(tr -d '\r' <"$TMP_DIR/curl.err" | head -n 1 | sed 's/^curl: ([0-9]*) //')"
    fi
    if [[ -s "$TMP_DIR/other" ]]; then
        # Not an event stream: a JSON error ({"error", "code"}) or a {"success": false} refusal.
        fail_with_body "$status" "$(cat "$TMP_DIR/other")"
    fi
    if [[ "$status" -ge 400 ]]; then
        die "HTTP $status"
    fi
    # A rejoin after a turn's last event: a complete answer without any event.
    [[ -z "$data" && "$curl_rc" == 0 && $STREAM_EVENTS -eq 0 ]] && return 0
    if [[ -n "$STREAM_SESSION" && -n "$STREAM_LAST_ID" ]]; then
        hint="; rejoin it with: $PROG resume $STREAM_SESSION --after $STREAM_LAST_ID"
    fi
    die "the event stream ended before its end event (retryable)$hint"
}

print_tools() {
    jq -r '(.tools | map(.name | length) | max // 4) as $w
        | (.tools[] | .name + (" " * ([($w - (.name|length)), 0] | max) + "  ")
            + (if .agentic then "billed" else "free  " end) + "  "
            + ((.description // "") | gsub("\\s+"; " ")))
        , "\(.count // (.tools|length)) tools"' <<<"$1" | sed 's/  *$//'
}

print_messages() {
    jq -r 'to_entries[] | (if .key > 0 then "\n" else "" end)
        + "[" + (.value.role // "?") + "]" + (if .value.interrupted == true then " (interrupted)" else "" end)
        + "\n" + (.value.content // "")' <<<"$1"
}

print_sessions() {
    jq -r '.sessions[] | .session_id + "  " + (.updated_at // "") + "  "
        + ((.message_count // 0) | tostring) + " msgs  "
        + ((.title // "") | gsub("\\s+"; " ") | if length > 60 then .[0:57] + "..." else . end)' <<<"$1"
}

print_json_or() {
    local body="$1" printer="$2"
    if [[ $RAW_JSON -eq 1 ]]; then
        jq . <<<"$body"
    else
        "$printer" "$body"
    fi
}

main() {
    local -a args=()
    local limit="" offset="" after="" have_after=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --json) RAW_JSON=1 ;;
            --no-tools) INCLUDE_TOOLS=false ;;
            --system-prompt)
                [[ $# -ge 2 ]] || usage_error "--system-prompt needs a value"
                SYSTEM_PROMPT="$2"; HAVE_SYSTEM_PROMPT=1; shift ;;
            --limit)
                [[ $# -ge 2 ]] || usage_error "--limit needs a value"
                limit="$2"; shift ;;
            --offset)
                [[ $# -ge 2 ]] || usage_error "--offset needs a value"
                offset="$2"; shift ;;
            --after)
                [[ $# -ge 2 ]] || usage_error "--after needs an event id"
                after="$2"; have_after=1; shift ;;
            --on-disconnect)
                [[ $# -ge 2 ]] || usage_error "--on-disconnect needs cancel or continue"
                case "$2" in
                    cancel | continue) ON_DISCONNECT="$2" ;;
                    *) usage_error "--on-disconnect must be cancel or continue, not '$2'" ;;
                esac
                shift ;;
            -h | --help) usage; exit 0 ;;
            --version) echo "$PROG $VERSION"; exit 0 ;;
            --) shift; args+=("$@"); break ;;
            *) args+=("$1") ;;
        esac
        shift
    done
    [[ ${#args[@]} -gt 0 ]] || { usage >&2; exit 2; }
    local cmd="${args[0]}"
    local -a rest=("${args[@]:1}")
    local n=${#rest[@]} body

    need() { # need COUNT "usage"
        [[ $n -eq $1 ]] || usage_error "usage: $PROG $2"
    }

    case "$cmd" in
        tools | tool | chat | chat-stream | session-create | session-chat | session-chat-stream | \
            resume | session-messages | sessions | session-delete | session-stop | api-key | usage) ;;
        *) usage_error "unknown command '$cmd'" ;;
    esac
    [[ $have_after -eq 0 || "$cmd" == resume ]] || usage_error "--after is an option of resume"
    case "$cmd" in
        tools) need 0 "tools" ;;
        tool) [[ $n -eq 1 || $n -eq 2 ]] || usage_error "usage: $PROG tool NAME [JSON]" ;;
        chat | chat-stream) need 1 "$cmd MSG" ;;
        session-create | usage) need 0 "$cmd" ;;
        session-chat | session-chat-stream) need 2 "$cmd ID MSG" ;;
        session-messages | session-delete | session-stop) need 1 "$cmd ID" ;;
        resume) need 1 "resume ID [--after EVENT_ID]" ;;
        sessions) need 0 "sessions [--limit N] [--offset N]" ;;
        api-key)
            [[ $n -ge 1 ]] || usage_error "usage: $PROG api-key set KEY | get | delete"
            case "${rest[0]}" in
                set) need 2 "api-key set KEY" ;;
                get | delete) need 1 "api-key ${rest[0]}" ;;
                *) usage_error "usage: $PROG api-key set KEY | get | delete" ;;
            esac ;;
    esac

    setup
    case "$cmd" in
        tools)
            body=$(api GET "$API_PATH" /tools)
            print_json_or "$body" print_tools ;;
        tool)
            local args_json="${rest[1]-}"
            [[ -n "${args_json// /}" ]] || args_json='{}'
            jq -e 'type == "object"' >/dev/null 2>&1 <<<"$args_json" ||
                die "the tool arguments must be a JSON object, e.g. '{\"query\": \"REST connection\"}'"
            body=$(api POST "$API_PATH" "/tools/$(urlencode "${rest[0]}")/execute" "$(jq -c . <<<"$args_json")")
            if [[ $RAW_JSON -eq 1 ]]; then jq . <<<"$body"; else jq -r '.result // ""' <<<"$body"; fi ;;
        chat)
            body=$(api POST "$API_PATH" /chat "$(chat_body "${rest[0]}")")
            print_chat "$body" ;;
        chat-stream)
            stream /chat/stream "$(chat_body "${rest[0]}")" ;;
        session-create)
            body=$(api POST "$API_PATH" /sessions)
            if [[ $RAW_JSON -eq 1 ]]; then jq . <<<"$body"; else
                jq -er '.session_id' <<<"$body" || die "the server did not return a session id"
            fi ;;
        session-chat)
            body=$(api POST "$API_PATH" "/sessions/$(urlencode "${rest[0]}")/chat" "$(chat_body "${rest[1]}")")
            print_chat "$body" ;;
        session-chat-stream)
            stream "/sessions/$(urlencode "${rest[0]}")/chat/stream" "$(chat_body "${rest[1]}")" "${rest[0]}" ;;
        resume)
            local query=""
            [[ $have_after -eq 1 ]] && query="?after=$(urlencode "$after")"
            stream "/sessions/$(urlencode "${rest[0]}")/stream$query" "" "${rest[0]}" ;;
        session-messages)
            body=$(api GET "$API_PATH" "/sessions/$(urlencode "${rest[0]}")/messages")
            print_json_or "$body" print_messages ;;
        sessions)
            local query=""
            [[ -n "$limit" ]] && query="limit=$(urlencode "$limit")"
            [[ -n "$offset" ]] && query="${query:+$query&}offset=$(urlencode "$offset")"
            body=$(api GET "$API_PATH" "/sessions${query:+?$query}")
            print_json_or "$body" print_sessions ;;
        session-delete)
            api DELETE "$API_PATH" "/sessions/$(urlencode "${rest[0]}")" | jq . ;;
        session-stop)
            api POST "$API_PATH" "/sessions/$(urlencode "${rest[0]}")/stop" | jq . ;;
        api-key)
            case "${rest[0]}" in
                set) api POST "$KEY_PATH" "" "$(jq -cn --arg k "${rest[1]}" '{api_key: $k}')" | jq . ;;
                get) api GET "$KEY_PATH" "" | jq . ;;
                delete) api POST "$KEY_PATH" /delete | jq . ;;
            esac ;;
        usage)
            api GET "$API_PATH" /usage | jq . ;;
    esac
}

main "$@"
