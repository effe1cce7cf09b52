//! A request that asks to switch protocols (`Connection: Upgrade` with
//! `Upgrade: h2c`, as `curl --http2` sends over plain HTTP) gets an
//! ordinary answer: the broker switches to nothing (HTTP/2 is offered over
//! TLS, by ALPN). actix-http would mark that answer `connection: upgrade`
//! and then close the connection without a word, so a request sent behind
//! it on the same connection went unanswered; the answer says
//! `Connection: close` instead, and the client knows to open another.

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::ConnectionType,
    middleware::Next,
};

/// See the module docs.
pub async fn close_instead_of_upgrading<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let asked_to_upgrade = req.head().upgrade();
    let mut response = next.call(req).await?;
    if asked_to_upgrade {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}
