//! The actix-web edge: authenticate, validate, send one message, map the
//! answer. [`configure`] is the single route table (CONTRACT §4 order).

mod assets;
mod authenticated;
mod chat_cancel;
mod diagnose;
mod drain_signal;
mod event_document;
pub mod extract;
mod fallback;
mod generations;
pub mod head_guard;
mod health;
mod history;
mod monitoring;
pub mod openapi;
mod openapi_answers;
mod publish;
pub mod server;
mod stream_heads;
pub mod streams;
mod subscribe;
mod task_create;
mod tasks;
pub mod tls;
mod ui_streams;
mod unread_body;
mod upgrades;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(streams::open_stream)
        .service(stream_heads::events_head)
        .service(streams::issue_ticket)
        .service(streams::renew_token)
        .service(diagnose::diagnose)
        .service(stream_heads::diagnose_head)
        .service(publish::publish)
        .service(publish::test_event)
        .service(history::history)
        .service(subscribe::subscribe)
        .service(monitoring::stats)
        .service(monitoring::connections)
        .service(monitoring::disconnect)
        .service(monitoring::monitoring)
        .service(monitoring::cleanup)
        .service(task_create::create_task)
        .service(tasks::get_task)
        .service(tasks::head_task)
        .service(tasks::update_task)
        .service(generations::append_text)
        .service(tasks::complete_task)
        .service(tasks::fail_task)
        .service(tasks::cancel_task)
        .service(tasks::task_events)
        .service(stream_heads::task_events_head)
        .service(ui_streams::task_ui_message_stream)
        .service(stream_heads::task_ui_message_stream_head)
        .service(ui_streams::chat_stream)
        .service(chat_cancel::cancel_chat)
        .service(stream_heads::chat_stream_head)
        .service(generations::upload)
        .service(health::health)
        .service(health::metrics)
        .service(openapi::openapi_json)
        .service(assets::index)
        .service(assets::client_js)
        .service(assets::tabs_js)
        .service(assets::stream_requests_js)
        .service(assets::diagnose_js)
        .service(assets::client_d_ts)
        .service(assets::react_js)
        .service(assets::react_d_ts)
        .service(assets::vendor_react)
        .service(assets::vendor_react_dom_client)
        .service(assets::vendor_react_shared)
        .service(assets::start_generation);
}
