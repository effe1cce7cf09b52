//! An agent's answer in steps: each model call of its loop uploaded as the
//! provider streamed it, with `?ends=step` so the stream's end marker ends
//! one step (a `step_end` event carrying the step's finish reason and
//! usage) and leaves the task running for the tools' answers and the next
//! call; the AI SDK's own `finish-step` parts and NDJSON `{"step_end"}`
//! lines do the same. Live, late and resumed at every id, the steps' ends
//! keep their places between the text and the tool events.

use serde_json::{Value, json};

use crate::{
    generations::{create, joined_text_runs, text_of},
    helpers::{EventStream, LONG, SHORT, SseEvent, TestApp, assert_error, labelled_sum, spawn_app},
    tool_calls::{
        AI_SDK_TOOLS, ANTHROPIC_TOOL_USE, GEMINI_FUNCTION_CALLS, OPENAI_TOOL_CALLS,
        RESPONSES_FUNCTION_CALL,
    },
};

/// Each frame that is text, a tool event or a step's end, in order: its
/// type, and the delta's text or the data less its `task_id`.
fn pieces(events: &[SseEvent]) -> Vec<(String, Value)> {
    events
        .iter()
        .filter(|e| {
            ["text", "tool_call", "tool_result", "step_end", "complete"]
                .iter()
                .any(|t| e.is(t))
        })
        .map(|e| {
            let mut data = e.json();
            let kind = e.event.clone().unwrap_or_default();
            if kind == "text" {
                return (kind, data["delta"].clone());
            }
            let object = data.as_object_mut().expect("an object");
            object.remove("task_id");
            object.remove("status");
            (kind, data)
        })
        .collect()
}

/// The events of `path`'s stream up to the first that `last` picks.
async fn read_until(app: &TestApp, path: &str, last: impl Fn(&SseEvent) -> bool) -> Vec<SseEvent> {
    let mut stream = app.open_stream(path, &[]).await;
    let mut events = Vec::new();
    while let Some(event) = stream.next_event(SHORT).await {
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
    panic!("{path} ended or went quiet before the event wanted: {events:?}");
}

/// Uploads a whole `body` as `content_type` to `/tasks/{id}/stream` with
/// `query`: the status and the JSON answer.
async fn upload(
    app: &TestApp,
    id: &str,
    query: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let answer = app
        .api_client
        .post(app.url(&format!("/tasks/{id}/stream{query}")))
        .header("Content-Type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("upload sent");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("a JSON answer"))
}

fn openai_chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({ "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
    format!("data: {chunk}\n\n")
}

/// One model call as OpenAI streams it: `text`, then a call of `weather`
/// (its arguments in two fragments) when `call` is given, the finish
/// reason, the usage chunk and `[DONE]`.
fn openai_call(text: &str, call: Option<&str>, usage: (u64, u64)) -> String {
    let mut body = openai_chunk(json!({ "role": "assistant", "content": text }), None);
    let finish = match call {
        Some(id) => {
            let start = json!({ "tool_calls": [{ "index": 0, "id": id, "type": "function",
                "function": { "name": "weather", "arguments": "{\"city\": " } }] });
            let rest =
                json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "\"Oslo\"}" } }] });
            body += &openai_chunk(start, None);
            body += &openai_chunk(rest, None);
            "tool_calls"
        }
        None => "stop",
    };
    body += &openai_chunk(json!({}), Some(finish));
    let usage = json!({ "choices": [], "usage": { "prompt_tokens": usage.0, "completion_tokens": usage.1 } });
    body + &format!("data: {usage}\n\ndata: [DONE]\n\n")
}

#[actix_web::test]
async fn an_agents_model_calls_uploaded_with_ends_step_are_one_answer_in_steps_live_late_and_resumed()
 {
    // Arrange: a viewer watches before the agent starts.
    let app = spawn_app().await;
    create(&app, "loop").await;
    let mut viewer = app.open_stream("/tasks/loop/events", &[]).await;

    // Act: the agent's loop. Its first model call asks for a tool; the
    // stream's [DONE] ends that step, not the answer.
    let first = openai_call("Let me check.", Some("call_w"), (20, 9));
    let (status, answer) = upload(&app, "loop", "?ends=step", "text/event-stream", &first).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task"]["status"], "running", "{answer}");
    assert_eq!(answer["step_ends"], 1, "{answer}");
    assert_eq!(answer["tool_calls"], 1, "{answer}");
    // The app ran the tool and reports its answer.
    let tool_answer = json!({ "tool_result": { "id": "call_w", "output": { "celsius": -3 } } });
    let (status, answer) = upload(
        &app,
        "loop",
        "",
        "application/x-ndjson",
        &format!("{tool_answer}\n"),
    )
    .await;
    assert_eq!(
        (status, answer["step_ends"].clone()),
        (200, json!(0)),
        "{answer}"
    );
    assert_eq!(answer["task"]["status"], "running", "{answer}");
    // The second call answers; its [DONE] ends the task, as by default.
    let last = openai_call("It is cold.", None, (35, 7));
    let (status, answer) = upload(&app, "loop", "", "text/event-stream", &last).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    assert_eq!(answer["step_ends"], 0, "{answer}");

    // Assert: live, each step's end after its call, with why it stopped
    // and what it took; the tool's answer and the next step after it.
    let step_end = json!({ "result": {
        "finish_reason": "tool-calls",
        "provider_finish_reason": "tool_calls",
        "usage": { "input_tokens": 20, "output_tokens": 9 },
    } });
    let expected = vec![
        ("text".to_owned(), json!("Let me check.")),
        (
            "tool_call".to_owned(),
            json!({ "tool_call_id": "call_w", "tool_name": "weather", "input": { "city": "Oslo" } }),
        ),
        ("step_end".to_owned(), step_end),
        (
            "tool_result".to_owned(),
            json!({ "tool_call_id": "call_w", "output": { "celsius": -3 } }),
        ),
        ("text".to_owned(), json!("It is cold.")),
        (
            "complete".to_owned(),
            json!({ "result": {
                "finish_reason": "stop",
                "provider_finish_reason": "stop",
                "usage": { "input_tokens": 35, "output_tokens": 7 },
            } }),
        ),
    ];
    let live = viewer.read_to_end(LONG).await;
    assert_eq!(joined_text_runs(pieces(&live)), expected);

    // A late viewer: the same, the text rolled up around the step's end.
    let late = app
        .open_stream("/tasks/loop/events", &[])
        .await
        .read_to_end(SHORT)
        .await;
    assert_eq!(pieces(&late), expected, "one event per run, in order");

    // CONTRACT §6: resuming at any id the late viewer saw gives exactly
    // what came after it.
    let seen: Vec<(String, usize)> = late
        .iter()
        .filter(|e| e.id.is_some())
        .scan(0, |before, e| {
            *before += pieces(std::slice::from_ref(e)).len();
            Some((e.id.clone().expect("an id"), *before))
        })
        .collect();
    assert!(seen.len() >= 5, "{seen:?}");
    for (id, before) in seen {
        let response = app
            .stream_response("/tasks/loop/events", &[("Last-Event-ID", &id)])
            .await;
        let after = match response.status().as_u16() {
            204 => Vec::new(),
            _ => pieces(&EventStream::new(response).read_to_end(SHORT).await),
        };
        assert_eq!(after, expected[before..], "resumed after {id}");
    }

    // Counted by why each step stopped; each step's tokens counted once.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let labels = [("finish_reason", "tool-calls")];
    assert_eq!(
        labelled_sum(&metrics, "sse_task_step_ends_total", &labels),
        1.0
    );
    for (direction, tokens) in [("input", 20.0 + 35.0), ("output", 9.0 + 7.0)] {
        let labels = [("direction", direction)];
        let counted = labelled_sum(&metrics, "sse_task_tokens_total", &labels);
        assert_eq!(counted, tokens, "{direction}");
    }
}

#[actix_web::test]
async fn each_providers_end_under_ends_step_ends_a_step_after_its_calls_and_leaves_the_task_running()
 {
    let app = spawn_app().await;
    for (id, body) in [
        ("openai", OPENAI_TOOL_CALLS),
        ("anthropic", ANTHROPIC_TOOL_USE),
        ("responses", RESPONSES_FUNCTION_CALL),
        ("gemini", GEMINI_FUNCTION_CALLS),
        ("ai-sdk", AI_SDK_TOOLS),
    ] {
        // Arrange
        create(&app, id).await;

        // Act
        let (status, answer) = upload(&app, id, "?ends=step", "text/event-stream", body).await;

        // Assert: the calls, then the step's end; the task goes on.
        assert_eq!(status, 200, "{id}: {answer}");
        assert_eq!(answer["task"]["status"], "running", "{id}: {answer}");
        assert_eq!(answer["step_ends"], 1, "{id}: {answer}");
        let events = read_until(&app, &format!("/tasks/{id}/events"), |e| e.is("step_end")).await;
        let kinds: Vec<_> = pieces(&events).into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("text"),
            "{id}: {kinds:?}"
        );
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("step_end"),
            "{id}: {kinds:?}"
        );
        assert!(kinds.contains(&"tool_call".to_owned()), "{id}: {kinds:?}");
        assert_eq!(text_of(&events), "On it.", "{id}");
        // The next step's upload, or the app, finishes the answer.
        let done = app
            .post_json(&format!("/tasks/{id}/complete"), &json!({}))
            .await;
        assert_eq!(done.status().as_u16(), 200, "{id}");
    }
    // Said by the OpenAI and Anthropic streams: the steps ended for tools.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let labels = [("finish_reason", "tool-calls")];
    assert!(labelled_sum(&metrics, "sse_task_step_ends_total", &labels) >= 2.0);
}

#[actix_web::test]
async fn under_ends_step_a_failure_still_fails_the_task() {
    // Arrange: a model call that breaks off with an error after some text.
    let app = spawn_app().await;
    create(&app, "broken").await;
    let body = [
        openai_chunk(json!({ "content": "Half" }), None),
        format!(
            "data: {}\n\n",
            json!({ "error": { "message": "overloaded" } })
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();

    // Act
    let (status, answer) = upload(&app, "broken", "?ends=step", "text/event-stream", &body).await;

    // Assert: failed, not a step ended; its viewers get the end.
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task"]["status"], "failed", "{answer}");
    assert_eq!(answer["step_ends"], 0, "{answer}");
    let events = app
        .open_stream("/tasks/broken/events", &[])
        .await
        .read_to_end(SHORT)
        .await;
    assert_eq!(text_of(&events), "Half");
    assert!(!events.iter().any(|e| e.is("step_end")), "{events:?}");
    let end = events.last().expect("the end");
    assert!(end.is("error"), "{events:?}");
    assert_eq!(end.json()["error"], "overloaded");
}

#[actix_web::test]
async fn an_ai_sdk_stream_keeps_its_own_steps_and_its_finish_gives_the_last_its_reason_ending_no_step_twice()
 {
    // Arrange: two steps as the SDK writes them, each closed by its own
    // `finish-step`, then `finish`.
    let app = spawn_app().await;
    let part = |part: Value| format!("data: {part}\n\n");
    let step = |text: &str, id: &str| {
        [
            part(json!({ "type": "start-step" })),
            part(json!({ "type": "text-start", "id": id })),
            part(json!({ "type": "text-delta", "id": id, "delta": text })),
            part(json!({ "type": "text-end", "id": id })),
            part(json!({ "type": "finish-step" })),
        ]
        .concat()
    };
    let body = [
        part(json!({ "type": "start" })),
        step("One.", "a"),
        step("Two.", "b"),
        part(json!({ "type": "finish", "finishReason": "stop" })),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();

    for (id, query, status, step_ends) in [
        ("whole", "", "completed", 2),
        // Under ?ends=step the `finish` right after a `finish-step` ends
        // nothing more: one `step_end` per step, the task left running.
        ("stepped", "?ends=step", "running", 2),
    ] {
        // Act
        create(&app, id).await;
        let (code, answer) = upload(&app, id, query, "text/event-stream", &body).await;

        // Assert
        assert_eq!(code, 200, "{id}: {answer}");
        assert_eq!(answer["task"]["status"], status, "{id}: {answer}");
        assert_eq!(answer["step_ends"], step_ends, "{id}: {answer}");
        let last = if status == "completed" {
            "complete"
        } else {
            "progress"
        };
        let events = read_until(&app, &format!("/tasks/{id}/events"), |e| e.is(last)).await;
        let kinds: Vec<_> = pieces(&events).into_iter().map(|(kind, _)| kind).collect();
        let mut expected = vec!["text", "step_end", "text", "step_end"];
        if status == "completed" {
            expected.push("complete");
        }
        assert_eq!(kinds, expected, "{id}");
        // `finish-step` says no reason; the `finish` right after the last
        // one does, and that step keeps it.
        let reasons: Vec<_> = events
            .iter()
            .filter(|e| e.is("step_end"))
            .map(|e| e.json()["result"]["finish_reason"].clone())
            .collect();
        assert_eq!(reasons, [Value::Null, json!("stop")], "{id}");
    }
}

#[actix_web::test]
async fn ndjson_step_end_lines_are_kept_and_bad_ones_are_refused_by_line() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "nd").await;
    let lines = [
        json!({ "delta": "Thinking about it." }),
        json!({ "step_end": {} }),
        json!({ "delta": "Done." }),
        json!({ "step_end": { "result": { "finish_reason": "stop", "usage": { "output_tokens": 3 } } } }),
        json!({ "complete": {} }),
    ]
    .iter()
    .map(|line| format!("{line}\n"))
    .collect::<String>();

    // Act
    let (status, answer) = upload(&app, "nd", "", "application/x-ndjson", &lines).await;

    // Assert
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["step_ends"], 2, "{answer}");
    let events = app
        .open_stream("/tasks/nd/events", &[])
        .await
        .read_to_end(SHORT)
        .await;
    let steps: Vec<_> = events
        .iter()
        .filter(|e| e.is("step_end"))
        .map(|e| e.json()["result"].clone())
        .collect();
    assert_eq!(
        steps,
        [
            Value::Null,
            json!({ "finish_reason": "stop", "usage": { "output_tokens": 3 } })
        ]
    );

    // Bad input: each refused with a JSON error naming what is wrong.
    for (n, (line, fragment)) in [
        (r#"{"step_end": 5}"#, "step_end"),
        (r#"{"step_end": {}, "delta": "x"}"#, "mixes"),
        (r#"{"step_end": {"result": {}}, "seq": 3}"#, "seq"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("bad-step-{n}");
        create(&app, &id).await;
        let body = format!("{{\"delta\": \"ok\"}}\n{line}\n");
        let response = app
            .api_client
            .post(app.url(&format!("/tasks/{id}/stream")))
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("upload sent");
        let error = assert_error(response, 422, "invalid_payload").await;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "{line}: {error}");
        assert!(message.contains("line 2"), "{line}: {error}");
        // What came before the refused line stays.
        let task = app.get_json(&format!("/tasks/{id}")).await;
        assert_eq!(task["status"], "running", "{line}: {task}");
    }
    // An unknown end is a 400 naming the parameter, before the body is read.
    create(&app, "bad-ends").await;
    let response = app
        .api_client
        .post(app.url("/tasks/bad-ends/stream?ends=answer"))
        .header("Content-Type", "application/x-ndjson")
        .body("{\"delta\": \"x\"}\n")
        .send()
        .await
        .expect("upload sent");
    let error = assert_error(response, 400, "invalid_query").await;
    assert!(error.to_string().contains("ends"), "{error}");
    // A step's end for a finished task is refused like any write to it.
    let (status, answer) = upload(
        &app,
        "nd",
        "",
        "application/x-ndjson",
        "{\"step_end\": {}}\n",
    )
    .await;
    assert_eq!(status, 409, "{answer}");
}
