#!/usr/bin/env bash
# A task producer for sse-broker with curl: creates a task, streams a text
# into it word by word with progress, and completes it. Stops when the task
# is cancelled (the broker answers the next write with 409 task_cancelled).
#
#   examples/task_producer.sh [URL]                  # default http://127.0.0.1:8080
#   TOKEN=$(sse-broker token --sub producer --scope publish) examples/task_producer.sh
#
# Watch it at URL/?task=ID or with: curl -N URL/tasks/ID/events
set -euo pipefail

URL=${1:-http://127.0.0.1:8080}
TASK_ID=${TASK_ID:-gen-$(date +%s)-$$}
TEXT="Server-Sent Events keep one HTTP response open and let the server write events into it as they happen. A browser that reconnects gets exactly what it missed."

auth=()
if [[ -n ${TOKEN:-} ]]; then auth=(-H "Authorization: Bearer $TOKEN"); fi

# call METHOD PATH JSON: sends one request; on 409 task_cancelled, stops the script.
call() {
  local response status body
  response=$(curl -sS -X "$1" "${auth[@]}" -H 'Content-Type: application/json' \
                  -d "$3" -w '\n%{http_code}' "$URL$2")
  status=${response##*$'\n'}
  body=${response%$'\n'*}
  if [[ $status == 409 && $body == *'"task_cancelled"'* ]]; then
    echo "task $TASK_ID: cancelled, stopping"
    exit 0
  elif [[ $status != 2* ]]; then
    echo "$1 $2: $status $body" >&2
    exit 1
  fi
}

# A JSON string: backslashes and double quotes escaped.
json_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

call POST /tasks "{\"task_id\":\"$TASK_ID\",\"task_type\":\"example\",\"stage\":\"thinking\"}"
echo "task $TASK_ID: $URL/?task=$TASK_ID"
call PATCH "/tasks/$TASK_ID" '{"progress":5,"stage":"writing"}'

read -ra words <<< "$TEXT"
total=${#words[@]}
for i in "${!words[@]}"; do
  delta=${words[$i]}
  (( i + 1 < total )) && delta+=" "
  call POST "/tasks/$TASK_ID/text" "{\"delta\":$(json_string "$delta")}"
  if (( (i + 1) % 10 == 0 )); then
    call PATCH "/tasks/$TASK_ID" "{\"progress\":$(( 5 + 90 * (i + 1) / total ))}"
  fi
  sleep 0.05
done

call POST "/tasks/$TASK_ID/complete" "{\"result\":{\"tokens\":$total}}"
echo "task $TASK_ID: completed"
