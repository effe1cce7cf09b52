//! The answers the document adds to operations, besides what each handler
//! says of itself: what every operation of a kind may answer (the broker's
//! limits, its store), each with an `ErrorBody`.

use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, path::Operation};

/// The answers every operation of a kind may give whatever its handler
/// says (the broker's limits and its store), so a client generated from
/// the document has a branch for each.
pub(super) fn limits_and_outages(path: &str, operation: &mut Operation, method: &str, open: bool) {
    if operation.request_body.is_some() {
        may_answer(
            operation,
            "408",
            "The body did not arrive within --body-read-timeout-secs (`request_timeout`)",
        );
        may_answer(
            operation,
            "413",
            "The body is over --max-body-bytes (`payload_too_large`)",
        );
    }
    if opens_stream(operation, method) {
        may_answer(
            operation,
            "429",
            "Too many new streams for this address or user, or too many open (`rate_limited`, \
             `too_many_streams`; `Retry-After`)",
        );
    }
    if is_publish_scoped(path, method) {
        may_answer(
            operation,
            "429",
            "The publisher's write budget (--publish-rate-per-user) is spent (`rate_limited`, \
             `Retry-After`)",
        );
    }
    if !open {
        may_answer(
            operation,
            "503",
            "Not now: the store did not answer in time (`store_unavailable`), the instance is \
             full (`too_many_connections`) or shutting down (`shutting_down`), or its signing \
             keys are not fetched yet (`auth_unavailable`); `Retry-After`",
        );
    }
}

/// Whether the operation opens a stream (a `GET` answering
/// `text/event-stream`): the rate limits of stream opens apply.
pub(super) fn opens_stream(operation: &Operation, method: &str) -> bool {
    method == "get"
        && operation.responses.responses.get("200").is_some_and(|answer| {
            matches!(answer, RefOr::T(answer) if answer.content.contains_key("text/event-stream"))
        })
}

/// The writes of the `publish` scope (`authenticated.rs`: one rate budget
/// covers them all).
fn is_publish_scoped(path: &str, method: &str) -> bool {
    method != "get"
        && method != "head"
        && (path.starts_with("/tasks")
            || path.starts_with("/chats/")
            || ["/sse/publish", "/sse/test-event", "/demo/generations"].contains(&path))
}

/// Adds `status` with an `ErrorBody` unless the operation lists it; a
/// listed 400 that does not name the case gets it appended.
pub(super) fn may_answer(operation: &mut Operation, status: &str, description: &str) {
    let responses = &mut operation.responses.responses;
    match responses.get_mut(status) {
        Some(RefOr::T(listed)) if status == "400" && !listed.description.contains(description) => {
            listed.description = format!("{}; or: {description}", listed.description);
        }
        Some(_) => {}
        None => {
            let answer = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            responses.insert(status.to_owned(), RefOr::T(answer));
        }
    }
}
