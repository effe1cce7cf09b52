//! The built-in demo producer behind the page at `/`: it plays an AI model
//! thinking, calling a tool, then writing an answer token by token, at a
//! realistic pace and in stages, into
//! an ordinary task, through the same `TaskService` a real producer's HTTP
//! calls reach. It stops as soon as the task is cancelled.

use std::time::Duration;

use crate::{
    domain::{TaskChange, TaskError, TaskId, ToolEvent, ToolOutcome},
    services::tasks::{Delta, NewTask, TaskService, TaskWriteError},
};

/// The `task_type` of demo tasks.
pub const TASK_TYPE: &str = "demo";
/// Longer than the demo producer ever stays silent (its longest pause is
/// `REVIEWING`): a demo task silent for this long has lost its producer.
pub const MAX_SILENCE: Duration = Duration::from_secs(5);

/// Between tokens: about 25 tokens per second, like a hosted model.
const TOKEN_INTERVAL: Duration = Duration::from_millis(40);
const REVIEWING: Duration = Duration::from_millis(400);
/// How long the demo model's one tool takes to answer.
const TOOL_RUN: Duration = Duration::from_millis(300);
const TOOL_CALL_ID: &str = "call_demo_1";

/// What the model "thinks" before it answers, streamed as its reasoning
/// (a viewer shows it apart from the answer, as reasoning models' UIs do).
const REASONING: &str = "The question is how a stream survives a dropped connection. Cover \
EventSource's own reconnect, the Last-Event-ID header, and replay from a store; end with proxies.";

const ANSWER: &str = "Server-Sent Events (SSE) keep one HTTP response open and let the server write \
events into it as they happen. The browser's EventSource API parses the stream, dispatches each \
event by name, and reconnects by itself when the connection drops, sending the id of the last event \
it saw in the Last-Event-ID header. A broker that stores its events can then replay exactly what the \
client missed, so a page that loses its network mid-answer still ends with every token, in order, \
exactly once. Because SSE is plain HTTP, it passes through proxies and load balancers that would \
block other protocols, as long as they do not buffer the response.";

/// Creates a demo task and starts producing into it; returns its id.
pub async fn start_generation(tasks: TaskService, prompt: &str) -> Result<TaskId, TaskWriteError> {
    let message = format!("prompt: {}", prompt.chars().take(200).collect::<String>());
    let task = tasks
        .create(NewTask {
            task_type: Some(TASK_TYPE.into()),
            stage: Some("thinking".into()),
            message: Some(message),
            ..NewTask::default()
        })
        .await?;
    let task_id = task.task_id.clone();
    actix_rt::spawn(async move {
        match produce(&tasks, &task.task_id).await {
            Ok(()) | Err(TaskWriteError::Task(TaskError::Cancelled)) => {}
            // Someone finished the task meanwhile (its page, an API call).
            Err(error @ TaskWriteError::Task(TaskError::Finished(_))) => {
                tracing::info!(task_id = %task.task_id, error.message = %error, "demo generation stopped")
            }
            Err(error) => {
                tracing::warn!(task_id = %task.task_id, error.message = %error, "demo generation stopped")
            }
        }
    });
    Ok(task_id)
}

fn update(progress: f64, stage: &str) -> TaskChange {
    TaskChange::Update {
        status: None,
        progress: Some(progress),
        stage: Some(stage.into()),
        message: None,
        force: false,
    }
}

async fn produce(tasks: &TaskService, task_id: &TaskId) -> Result<(), TaskWriteError> {
    tasks.change(task_id, update(5.0, "thinking")).await?;
    for token in REASONING.split_inclusive(' ') {
        tasks
            .append(task_id, vec![Delta::reasoning(token, None)])
            .await?;
        actix_rt::time::sleep(TOKEN_INTERVAL).await;
    }
    // It looks something up, as an agent does, before it answers.
    let query = serde_json::json!({ "query": "EventSource Last-Event-ID reconnect" });
    let call = ToolEvent::call(TOOL_CALL_ID, "search_docs", query, "the demo's call")
        .expect("a well-formed call");
    tasks.change(task_id, TaskChange::Tool(call)).await?;
    // The model's call ends with the call: its answer is the next step.
    let asked_for_tools = serde_json::json!({ "finish_reason": "tool-calls" });
    let step_end = TaskChange::StepEnd {
        result: Some(asked_for_tools),
    };
    tasks.change(task_id, step_end).await?;
    actix_rt::time::sleep(TOOL_RUN).await;
    let found = serde_json::json!({ "results": 3, "top": "HTML Standard: server-sent events" });
    let answer = ToolEvent::result(
        TOOL_CALL_ID,
        ToolOutcome::Output(found),
        "the demo's answer",
    )
    .expect("a well-formed answer");
    tasks.change(task_id, TaskChange::Tool(answer)).await?;
    let tokens: Vec<&str> = ANSWER.split_inclusive(' ').collect();
    let total = tokens.len();
    tasks.change(task_id, update(10.0, "writing")).await?;
    for (index, token) in tokens.iter().enumerate() {
        tasks
            .append(task_id, vec![Delta::answer(*token, None)])
            .await?;
        if index % 10 == 9 {
            let progress = 10.0 + 80.0 * (index + 1) as f64 / total as f64;
            tasks.change(task_id, update(progress, "writing")).await?;
        }
        actix_rt::time::sleep(TOKEN_INTERVAL).await;
    }
    tasks.change(task_id, update(95.0, "reviewing")).await?;
    actix_rt::time::sleep(REVIEWING).await;
    let result = serde_json::json!({ "tokens": total, "text": ANSWER });
    tasks
        .change(
            task_id,
            TaskChange::Complete {
                result: Some(result),
            },
        )
        .await?;
    Ok(())
}
