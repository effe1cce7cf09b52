//! The floor of this stack for the token path: the least an actix-web
//! server must do to carry `sse-bench tokens` (one streamed NDJSON upload
//! per generation, task streams watching). Each chunk of an upload that
//! arrives goes at once to the task's viewers as one `text` frame; nothing
//! is stored, checked or routed, there are no actors and no second thread.
//! What it cannot do on one core, the broker cannot either without going
//! below actix-web.
//!
//! ```sh
//! cargo build --release -p sse-bench --example token_floor
//! taskset -c 0 target/release/examples/token_floor 127.0.0.1:18500 & BP=$!
//! taskset -c 1 target/release/sse-bench tokens --url http://127.0.0.1:18500 \
//!     --broker-pid $BP --threads 1 --generations 1000 --tokens 500 --rate 50 --late-viewers 0
//! ```

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Each task's viewers; one worker thread, so no lock.
#[derive(Default)]
struct Tasks(RefCell<HashMap<String, Vec<mpsc::UnboundedSender<Bytes>>>>);

impl Tasks {
    fn send(&self, task_id: &str, frame: &Bytes) {
        if let Some(viewers) = self.0.borrow_mut().get_mut(task_id) {
            viewers.retain(|viewer| viewer.send(frame.clone()).is_ok());
        }
    }
}

async fn create(tasks: web::Data<Rc<Tasks>>, body: web::Json<Value>) -> HttpResponse {
    let task_id = body["task_id"].as_str().unwrap_or_default().to_owned();
    tasks.0.borrow_mut().entry(task_id.clone()).or_default();
    HttpResponse::Created().json(json!({"task_id": task_id, "status": "pending"}))
}

async fn events(tasks: web::Data<Rc<Tasks>>, task_id: web::Path<String>) -> HttpResponse {
    let (viewer, frames) = mpsc::unbounded_channel();
    let _ = viewer.send(Bytes::from_static(b"event: connected\ndata: {}\n\n"));
    tasks
        .0
        .borrow_mut()
        .entry(task_id.into_inner())
        .or_default()
        .push(viewer);
    let body =
        tokio_stream::wrappers::UnboundedReceiverStream::new(frames).map(Ok::<_, actix_web::Error>);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}

async fn upload(
    tasks: web::Data<Rc<Tasks>>,
    task_id: web::Path<String>,
    mut body: web::Payload,
) -> HttpResponse {
    let task_id = task_id.into_inner();
    let (mut pending, mut deltas, mut chars) = (Vec::<u8>::new(), 0u64, 0u64);
    while let Some(Ok(chunk)) = body.next().await {
        pending.extend_from_slice(&chunk);
        let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let lines: Vec<u8> = pending.drain(..=end).collect();
        let mut text = String::new();
        let mut complete = false;
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(line) = serde_json::from_slice::<Value>(line) else {
                return HttpResponse::UnprocessableEntity().finish();
            };
            if let Some(delta) = line["delta"].as_str() {
                text.push_str(delta);
                deltas += 1;
                chars += delta.chars().count() as u64;
            }
            complete |= line.get("complete").is_some();
        }
        if !text.is_empty() {
            let frame = format!("event: text\ndata: {}\n\n", json!({"delta": text}));
            tasks.send(&task_id, &Bytes::from(frame));
        }
        if complete {
            tasks.send(
                &task_id,
                &Bytes::from_static(b"event: complete\ndata: {}\n\n"),
            );
            tasks.0.borrow_mut().remove(&task_id);
        }
    }
    HttpResponse::Ok().json(json!({
        "task": {"task_id": task_id, "status": "completed"},
        "deltas": deltas,
        "chars": chars,
    }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18500".to_owned());
    HttpServer::new(|| {
        App::new()
            .app_data(web::Data::new(Rc::new(Tasks::default())))
            .route("/tasks", web::post().to(create))
            .route("/tasks/{id}/events", web::get().to(events))
            .route("/tasks/{id}/stream", web::post().to(upload))
    })
    .workers(1)
    .bind(bind)?
    .run()
    .await
}
