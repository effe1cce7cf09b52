//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' own `#[utoipa::path]` annotations as they are registered.

use actix_web::{HttpResponse, route, web};

use super::openapi_answers::{limits_and_outages, may_answer, opens_stream};
use utoipa::{
    OpenApi,
    openapi::{
        Components, Object, ObjectBuilder, RefOr, Schema, Type,
        path::{Operation, ParameterIn},
        schema::{ArrayItems, SchemaType},
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
    },
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sse-broker",
        description = "Server-Sent Events broker: resumable streams, publishing, monitoring.\n\n\
            Every error is an `ErrorBody`. Besides the answers listed per operation, any \
            request may get: 400 `malformed_request` (a request head that is not valid \
            HTTP/1.1) or `invalid_query` (a query string over 16 KiB); 404 `not_found` \
            (unknown path); 405 `method_not_allowed` (with `Allow`); 408 `request_timeout` \
            (first request head not complete in 5 s); 431 `headers_too_large` (headers over \
            32 KiB or more than 96 fields); 415 `unsupported_media_type` (a request body \
            sent with a `Content-Encoding`: bodies are read uncompressed); 403 \
            `cors_origin_not_allowed` or \
            `cors_request_not_allowed` (a refused CORS preflight); 503 `shutting_down`, \
            `store_unavailable` or `store_outcome_unknown` (the store did not answer within \
            `--store-timeout-ms`), `auth_unavailable` (signing keys not fetched yet), with \
            `Retry-After` where a retry can help. The document describes the broker that \
            serves it: with authentication on, operations that need a token list 401 and \
            403 and their security; a token goes in `Authorization: Bearer`, else the \
            `access_token` query parameter, else (reads only) the `sse_token` cookie. With \
            authentication off no operation answers 403, only a stream opened with an \
            unknown, used or expired `?ticket=` answers 401, and only a stream open (its \
            address's rate) answers 429: no per-user budget is kept.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(crate::error::ErrorBody))
)]
pub struct ApiDoc;

/// The generated document, rendered once at start-up.
pub struct OpenApiJson(pub String);

/// This document.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
#[route("/openapi.json", method = "GET", method = "HEAD")]
pub async fn openapi_json(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// What every operation of a kind may answer, added once the handlers have
/// described themselves, so a client generated from the document expects
/// it: with authentication on, the ways to send a token (`securitySchemes`)
/// and, for each operation that needs a token, its security and 401/403;
/// for each operation on a task, 400 `invalid_task_id` and 404
/// `task_not_found`; the forms of ids and names, as their parsers take them.
pub fn complete(api: &mut utoipa::openapi::OpenApi, auth_enabled: bool) {
    let components = api.components.get_or_insert_with(Default::default);
    for schema in components.schemas.values_mut() {
        if let RefOr::T(Schema::Object(object)) = schema {
            constrain_named_fields(object);
        }
    }
    constrain_type_list(components);
    if auth_enabled {
        add_security_schemes(components);
    }
    for (path, item) in api.paths.paths.iter_mut() {
        let methods = [
            (&mut item.get, "get"),
            (&mut item.head, "head"),
            (&mut item.post, "post"),
            (&mut item.put, "put"),
            (&mut item.patch, "patch"),
            (&mut item.delete, "delete"),
        ];
        for (operation, method) in methods {
            let Some(operation) = operation else {
                continue;
            };
            let reads = matches!(method, "get" | "head");
            let open = is_open(path, operation, reads);
            if auth_enabled && !open {
                secure(operation, reads);
            }
            limits_and_outages(path, operation, method, open);
            if !auth_enabled {
                unsecured(operation, method);
            }
            constrain_path_ids(path, operation);
            constrain_query(operation);
            headers_never_null(operation);
            if path.starts_with("/tasks/{id}") {
                may_answer(operation, "400", "Malformed task id (`invalid_task_id`)");
                may_answer(operation, "404", "No such task (`task_not_found`)");
            }
        }
        name_head_apart(item);
    }
}

/// A route that answers GET and HEAD is one handler, so both operations
/// come out with its name as `operationId`, which OpenAPI requires to be
/// unique in the document (validators refuse it, and code generators make
/// two methods of one name): the HEAD one gets `_head` appended.
fn name_head_apart(item: &mut utoipa::openapi::PathItem) {
    let get_id = item.get.as_ref().and_then(|get| get.operation_id.clone());
    if let Some(head) = item.head.as_mut()
        && let Some(id) = head.operation_id.as_mut()
        && get_id.as_ref() == Some(id)
    {
        id.push_str("_head");
    }
}

fn add_security_schemes(components: &mut Components) {
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
        QUERY,
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "access_token",
            "The token in the query, for `EventSource` (which cannot send headers)",
        ))),
    );
    components.add_security_scheme(
        COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "sse_token",
            "The token in a cookie: `GET` and `HEAD` only (never for writes: CSRF)",
        ))),
    );
}

/// An event type (`domain::event_type`'s rule).
const EVENT_TYPE: &str = "^[a-z][a-z0-9_.-]{0,63}$";
/// A project or user id (`domain::identifiers`' rule).
const IDENTIFIER: &str = "^[A-Za-z0-9_.:@-]{1,128}$";
/// A task type (`domain::task`'s rule: a metric label, so bounded).
const TASK_TYPE: &str = "^[a-z0-9_.-]{1,64}$";
/// An event id, as `after` and `Last-Event-ID` carry it.
const EVENT_ID: &str = "^[0-9]{1,19}$";

/// The form a text field or query parameter of each name takes wherever it
/// appears, request or answer.
const NAMED_FORMS: [(&str, &str); 8] = [
    ("event_type", EVENT_TYPE),
    ("project_id", IDENTIFIER),
    ("user_id", IDENTIFIER),
    ("task_id", TASK_OR_CHAT_ID),
    ("chat_id", TASK_OR_CHAT_ID),
    ("task_type", TASK_TYPE),
    ("connection_id", CONNECTION_ID),
    ("after", EVENT_ID),
];

/// Forms of query parameters whose name means something else in answers
/// (`?scope=cluster|local` asks; a listing's `scope` says `cluster` or
/// `instance`).
const QUERY_FORMS: [(&str, &str); 1] = [("scope", "^(cluster|local)$")];

fn form_of(name: &str) -> Option<&'static str> {
    NAMED_FORMS
        .iter()
        .find_map(|(field, form)| (*field == name).then_some(*form))
}

/// Gives `schema` the form its name says, if it is text (`or_empty`: or
/// empty, read as absent).
fn constrain_text(schema: &mut RefOr<Schema>, name: &str, or_empty: bool) {
    let (Some(form), RefOr::T(Schema::Object(object))) = (form_of(name), schema) else {
        return;
    };
    let text = match &object.schema_type {
        SchemaType::Type(kind) => *kind == Type::String,
        SchemaType::Array(kinds) => kinds.contains(&Type::String),
        SchemaType::AnyValue => false,
    };
    if text {
        object.pattern = Some(match or_empty {
            // `^X$` → `^(X)?$`
            true => format!("^({})?$", &form[1..form.len() - 1]),
            false => form.to_owned(),
        });
    }
}

/// [`NAMED_FORMS`] on the fields of one component schema.
fn constrain_named_fields(object: &mut Object) {
    for (name, property) in object.properties.iter_mut() {
        constrain_text(property, name, false);
    }
}

/// A subscription's type list as an array holds event types (as a
/// comma-separated string it has no pattern: blank entries are skipped).
fn constrain_type_list(components: &mut Components) {
    let Some(RefOr::T(Schema::OneOf(forms))) = components.schemas.get_mut("EventTypeList") else {
        return;
    };
    for form in &mut forms.items {
        if let RefOr::T(Schema::Array(list)) = form
            && let ArrayItems::RefOrSchema(item) = &mut list.items
        {
            constrain_text(item.as_mut(), "event_type", false);
        }
    }
}

/// [`NAMED_FORMS`] on the query parameters of one operation.
fn constrain_query(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.parameter_in == ParameterIn::Query
            && let Some(schema) = parameter.schema.as_mut()
        {
            // An empty project (`project_param`) or `after` is none.
            let or_empty = ["project_id", "after"].contains(&parameter.name.as_str());
            constrain_text(schema, &parameter.name, or_empty);
            if let (Some((_, form)), RefOr::T(Schema::Object(object))) = (
                QUERY_FORMS.iter().find(|(name, _)| *name == parameter.name),
                schema,
            ) {
                object.pattern = Some((*form).to_owned());
            }
        }
    }
}

/// A header is text or absent, never `null`: an optional header's schema
/// is its type alone (its absence is `required: false`).
fn headers_never_null(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.parameter_in == ParameterIn::Header
            && let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
            && let SchemaType::Array(kinds) = &object.schema_type
        {
            let kinds: Vec<Type> = kinds
                .iter()
                .filter(|k| **k != Type::Null)
                .cloned()
                .collect();
            if let [kind] = &kinds[..] {
                object.schema_type = SchemaType::Type(kind.clone());
            }
        }
    }
}

/// A task id or a chat id (`domain::task`'s rule).
const TASK_OR_CHAT_ID: &str = "^[A-Za-z0-9_-]{1,128}$";
/// A connection id: a UUID.
const CONNECTION_ID: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Gives each id in `path` the form its parser accepts.
fn constrain_path_ids(path: &str, operation: &mut Operation) {
    let pattern = if path.starts_with("/sse/connections/") {
        CONNECTION_ID
    } else {
        TASK_OR_CHAT_ID
    };
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter
            && parameter.parameter_in == ParameterIn::Path
        {
            let form = ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .build();
            parameter.schema = Some(RefOr::T(Schema::Object(form)));
        }
    }
}

const BEARER: &str = "bearer";
const QUERY: &str = "access_token";
const COOKIE: &str = "sse_token";

/// Served to anyone (security.md, scope "none"): the probes, the metrics,
/// this document, and the browser assets.
fn is_open(path: &str, operation: &Operation, reads: bool) -> bool {
    let asset = operation
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|tag| tag == "assets"));
    ["/health", "/metrics", "/openapi.json"].contains(&path) || (asset && reads)
}

/// An operation of a broker with authentication off: no token is asked
/// for, so none of the 401 and 403 its handler lists for a broker with it
/// on, but for a stream open's `?ticket=`, which is still checked; and no
/// per-user budget is kept, so only a stream open (its address's rate)
/// answers 429.
fn unsecured(operation: &mut Operation, method: &str) {
    let responses = &mut operation.responses.responses;
    responses.remove("403");
    responses.remove("401");
    if !opens_stream(operation, method) {
        operation.responses.responses.remove("429");
    }
    let takes_ticket =
        operation.parameters.iter().flatten().any(
            |parameter| matches!(parameter, RefOr::T(parameter) if parameter.name == "ticket"),
        );
    if takes_ticket {
        may_answer(
            operation,
            "401",
            "An unknown, used or expired `?ticket=` (`unauthorized`)",
        );
    }
}

fn secure(operation: &mut Operation, reads: bool) {
    let mut ways = vec![
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
        SecurityRequirement::new(QUERY, Vec::<String>::new()),
    ];
    if reads {
        ways.push(SecurityRequirement::new(COOKIE, Vec::<String>::new()));
    }
    operation.security = Some(ways);
    may_answer(
        operation,
        "401",
        "No token, or a token that is not valid (`unauthorized`, with `WWW-Authenticate`)",
    );
    may_answer(
        operation,
        "403",
        "The token lacks this operation's scope, or the project or connection is not its (`forbidden`)",
    );
}
