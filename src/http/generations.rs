//! How a producer writes a generation's text: one streamed upload
//! (`POST /tasks/{id}/stream`), or a request per piece (`POST
//! /tasks/{id}/text`).

use actix_web::{HttpRequest, HttpResponse, http::header, post, web};
use serde::{Deserialize, Serialize};

use super::{
    extract::{Authenticated, BodyLimit, JsonBody, Publish, Query, uncompressed},
    tasks::task_id,
};
use crate::{
    domain::{ProducerSeq, TaskId, task_json},
    error::{ApiError, ErrorCode},
    services::{
        generation_input::{UploadEnds, UploadFormat},
        tasks::Delta,
        uploads::{Counted, UploadLimits},
    },
    state::AppState,
};

/// Deltas accepted in one `/text` request.
const MAX_DELTAS: usize = 1000;

/// What an upload did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadAnswer {
    /// The task after the upload.
    #[schema(value_type = crate::http::tasks::TaskView)]
    pub task: serde_json::Value,
    /// What its writes accepted.
    #[serde(flatten)]
    pub counts: Counted,
    /// How the body was read: `ndjson`; for an event stream the stream it
    /// was recognised as (`openai_chat`, `openai_responses`, `anthropic`,
    /// `gemini`, `ai_sdk`), or `event_stream` when no event told (a stream
    /// read here that gave no text is told by this).
    #[schema(example = "anthropic")]
    pub read_as: &'static str,
}

/// What an upload's query may say.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// What the stream's end marker (`[DONE]`, `message_stop`, the AI
    /// SDK's `finish`, an NDJSON `complete`) ends: `task` (the default)
    /// completes the task; `step` ends one step of an answer that goes on
    /// (one model call of an agent's loop: a `step_end` event, the task
    /// left running for the next call's upload).
    #[param(inline)]
    pub ends: Option<UploadEnds>,
}

/// Upload a generation as it is produced: a streamed body, applied line by
/// line as it arrives, so viewers see tokens live. `Content-Type` picks the
/// format: `application/x-ndjson` (`{"delta", "seq"?}`, `{"reasoning",
/// "seq"?}`, `{"progress", "stage"?, "message"?, "force"?}`, `{"complete":
/// {"result"?}}`, `{"fail": {"error"}}`, `{"tool_call": {"id", "name",
/// "input"?, "title"?, "tool_metadata"?}}`, `{"tool_result": {"id",
/// "output"? | "error"? | "denied"?, "tool_metadata"?}}`, `{"tool_approval":
/// {"id", "approval_id"}}`, `{"step_end": {"result"?}}`, an
/// answer's sources, files, data parts and providers' own parts:
/// `{"source": {"id", "url"? | "media_type"?, "title"?, "filename"?}}`,
/// `{"file": {"url", "media_type", "reasoning"?}}`, `{"data_part": {"name",
/// "id"?, "data", "transient"?}}`, `{"custom_part": {"kind"}}`,
/// `{"steering_message": {"id", "parts"}}`, the end of
/// a part of text: `{"text_end": {"citations"?: [{"source", "start_index"?,
/// "end_index"?, "cited_text"?}]}}`, `{"reasoning_end": {}}`,
/// what the app says of the answer's message: `{"message_metadata": {…}}`;
/// tool lines, sources, files, custom parts and part ends may carry the model provider's
/// `"provider_metadata": {…}`), or
/// `text/event-stream` carrying a model provider's streamed answer (OpenAI
/// Chat Completions or Responses, Anthropic Messages, Gemini) or an AI SDK
/// UI message stream, piped straight in, each told apart by its events'
/// shape, its tool calls kept whole (`tool_call` events), an AI SDK stream's
/// `source-url`, `source-document`, `file`, `reasoning-file`, `data-*`,
/// `custom` and `steering-message` parts kept as `source`, `file`,
/// `data_part`, `custom_part` and `steering_message` events, its `text-end` and `reasoning-end` where they part text or say
/// something of it (`citations`, `providerMetadata`) as `text_end` and
/// `reasoning_end` events, the `messageMetadata` of its `start`, `message-metadata` and
/// `finish` parts as `message_metadata` events where it changes what is
/// merged; NDJSON lines may also be such a
/// stream's chunks, as SDKs write them (`toReadableStream()`). A provider's
/// error answer piped in unchecked fails the task with its message. A task has
/// one upload at a time: a newer one (a retry) takes over from an older one
/// still open, which is answered 409 `upload_superseded` at once. An
/// agent's answer of several model calls keeps its steps apart: the AI
/// SDK's `finish-step`, an NDJSON `{"step_end": {"result"?}}` line, or
/// (`?ends=step`) the stream's own end each give a `step_end` event, the
/// task left running for the next step's upload.
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id"), UploadQuery),
    request_body(content((String = "application/x-ndjson"), (String = "application/jsonl"), (String = "text/event-stream")), description = "NDJSON lines, or text/event-stream (OpenAI Chat Completions or Responses, Anthropic, Gemini, AI SDK)"),
    responses(
        (status = 200, description = "The body ended; everything in it is applied", body = UploadAnswer),
        (status = 400, description = "`?ends=` other than `task` or `step` (`invalid_query`)", body = crate::error::ErrorBody),
        (status = 404, description = "No such task", body = crate::error::ErrorBody),
        (status = 408, description = "The producer sent nothing for --body-read-timeout-secs", body = crate::error::ErrorBody),
        (status = 409, description = "The task was cancelled (`task_cancelled`, answered at once, the upload closed), is finished (`task_finished`, naming the line), or a newer upload to it took over (`upload_superseded`, at once)", body = crate::error::ErrorBody),
        (status = 413, description = "A line or event over --max-upload-line-bytes, or an event-stream body that is JSON (an error answer, read whole) past it", body = crate::error::ErrorBody),
        (status = 415, description = "Neither NDJSON nor an event stream, or a compressed body (`Content-Encoding`)", body = crate::error::ErrorBody),
        (status = 422, description = "A malformed line, or one the task refuses (a progress out of range or going backwards), named; the lines before it stay applied. An event-stream body whose first line is no event-stream line (an error page) is named by how it begins", body = crate::error::ErrorBody),
        (status = 503, description = "The instance began its drain (`shutting_down`), the store did not answer (`store_unavailable`), or the uploads' memory budget for unfinished lines is spent (`upload_memory_full`, --upload-memory-mib); the lines before the answer are applied. See Retry-After", body = crate::error::ErrorBody),
    )
)]
#[post("/tasks/{id}/stream")]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Publish>,
    query: Query<UploadQuery>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let task_id = TaskId::parse(&id)?;
    let ends = query.ends.unwrap_or_default();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = UploadFormat::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the generation as application/x-ndjson (or application/jsonl) or text/event-stream",
        )
    })?;
    uncompressed(&req)?;
    let body_limit = BodyLimit::of(&req);
    let limits = UploadLimits {
        max_line_bytes: body_limit.max_upload_line_bytes,
        idle: body_limit.read_timeout,
    };
    let summary = state
        .tasks
        .ingest(&auth.principal, &task_id, format, ends, body, limits)
        .await?;
    Ok(HttpResponse::Ok().json(UploadAnswer {
        task: task_json(&summary.task),
        counts: summary.counts,
        read_as: summary.read_as,
    }))
}

/// Exactly one of `delta`, `reasoning` (each with its optional `seq`) and
/// `deltas`. A field it does not know is refused, as an upload's line
/// refuses it: a misspelt `seq` ignored would let a retry double text.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextRequest {
    /// One piece of the answer.
    pub delta: Option<String>,
    /// One piece of the model's reasoning (its thinking), streamed as
    /// `reasoning` events apart from the answer.
    pub reasoning: Option<String>,
    /// The piece's sequence number: a piece at or below the task's last
    /// accepted `seq` is a retry and is ignored. One numbering for the
    /// answer and the reasoning.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 9223372036854775807_u64)]
    pub seq: Option<ProducerSeq>,
    /// Several pieces, in order, in one request: strings (of the answer),
    /// or `{"delta", "seq"?}` and `{"reasoning", "seq"?}` objects.
    pub deltas: Option<Vec<DeltaItem>>,
}

impl TextRequest {
    /// The deltas in order. A request giving two forms, or a `seq` beside
    /// `deltas` (which would number none of them), is refused rather than
    /// read one way or the other.
    fn into_deltas(self) -> Result<Vec<Delta>, ApiError> {
        let invalid = |message: &str| ApiError::new(ErrorCode::InvalidField, message);
        let seq = self.seq.map(ProducerSeq::get);
        match (self.delta, self.reasoning, self.deltas) {
            (Some(text), None, None) => Ok(vec![Delta::answer(text, seq)]),
            (None, Some(text), None) => Ok(vec![Delta::reasoning(text, seq)]),
            (None, None, Some(items)) if !items.is_empty() && seq.is_none() => items
                .into_iter()
                .enumerate()
                .map(|(at, item)| item.into_delta(at))
                .collect(),
            (None, None, Some(items)) if !items.is_empty() => Err(invalid(
                "seq goes with delta or reasoning; number each of deltas as {\"delta\", \"seq\"}",
            )),
            (None, None, Some(_)) => Err(invalid("deltas is empty: send one piece or more")),
            (None, None, None) => Err(invalid(
                "send `delta` (a string), `reasoning` (a string) or `deltas` (an array of strings)",
            )),
            _ => Err(invalid("send one of delta, reasoning and deltas")),
        }
    }
}

/// One of `deltas`: a string (of the answer), or a piece with its kind and
/// sequence number. Read by its JSON type, so a refused object names its
/// own field (`deltas[1].seq`), which an untagged enum could not.
#[derive(Debug, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DeltaItem {
    Text(String),
    Numbered(NumberedDelta),
}

impl<'de> Deserialize<'de> for DeltaItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Item;
        impl<'de> serde::de::Visitor<'de> for Item {
            type Value = DeltaItem;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, or an object {\"delta\" or \"reasoning\", \"seq\"?}")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DeltaItem, E> {
                Ok(DeltaItem::Text(text.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<DeltaItem, A::Error> {
                let map = serde::de::value::MapAccessDeserializer::new(map);
                NumberedDelta::deserialize(map).map(DeltaItem::Numbered)
            }
        }
        deserializer.deserialize_any(Item)
    }
}

/// `{"delta", "seq"?}` or `{"reasoning", "seq"?}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberedDelta {
    delta: Option<String>,
    reasoning: Option<String>,
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 9223372036854775807_u64)]
    seq: Option<ProducerSeq>,
}

impl DeltaItem {
    /// The piece, the `at`th of `deltas`.
    fn into_delta(self, at: usize) -> Result<Delta, ApiError> {
        let NumberedDelta {
            delta,
            reasoning,
            seq,
        } = match self {
            DeltaItem::Text(text) => return Ok(Delta::answer(text, None)),
            DeltaItem::Numbered(numbered) => numbered,
        };
        let seq = seq.map(ProducerSeq::get);
        match (delta, reasoning) {
            (Some(text), None) => Ok(Delta::answer(text, seq)),
            (None, Some(text)) => Ok(Delta::reasoning(text, seq)),
            _ => Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("deltas[{at}] needs one of delta and reasoning (a string), not both"),
            )),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TextResponse {
    /// Per delta, the id of the event it went into (`text`, or
    /// `reasoning`: the pieces of one request share one event per run of
    /// one kind), `null` for a retried `seq`. An empty piece answers the id
    /// of the event the text around it went into (`null` if none did).
    pub ids: Vec<Option<i64>>,
}

/// Append generated text; emits `text` for the answer and `reasoning` for
/// the model's thinking (pieces of one kind of one task arriving within
/// `--text-coalesce-ms` share one event).
#[utoipa::path(
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    request_body = TextRequest,
    responses(
        (status = 202, description = "Stored and delivered", body = TextResponse),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 409, description = "Cancelled (stop producing) or finished", body = crate::error::ErrorBody),
        (status = 422, description = "No delta given, two of delta, reasoning and deltas together, or a wrong field type", body = crate::error::ErrorBody),
    )
)]
#[post("/tasks/{id}/text")]
pub async fn append_text(
    state: web::Data<AppState>,
    id: web::Path<String>,
    auth: Authenticated<Publish>,
    body: JsonBody<TextRequest>,
) -> Result<HttpResponse, ApiError> {
    let deltas = body.0.into_deltas()?;
    if deltas.len() > MAX_DELTAS {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("at most {MAX_DELTAS} deltas per request"),
        ));
    }
    let count = deltas.len();
    let written = state
        .tasks
        .append_visible(&auth.principal, &task_id(&id)?, deltas)
        .await?;
    // The new deltas of one request go into one event (one per run of one
    // kind): each answers its own event's id, a retried one `null`.
    Ok(HttpResponse::Accepted().json(TextResponse {
        ids: (0..count)
            .map(|n| written.text_id_of(n).map(|id| id.0))
            .collect(),
    }))
}
