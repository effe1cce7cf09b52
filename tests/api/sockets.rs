//! The broker's end of a connection: every write leaves at once
//! (`TCP_NODELAY`), so a stream never waits for the client's delayed
//! acknowledgement of the previous event.

use std::{
    net::SocketAddr,
    os::fd::{BorrowedFd, RawFd},
};

use crate::helpers::{raw_http::open_until, spawn_app};

/// `TCP_NODELAY` of the broker's socket of the connection from `client`:
/// the descriptor of this process (the broker runs in the test) bound to
/// `server` whose peer is `client`; `None` if there is no such socket.
pub fn server_side_nodelay(server: SocketAddr, client: SocketAddr) -> Option<bool> {
    let descriptors = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd");
    descriptors
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .find_map(|fd| {
            // SAFETY: only socket options are read; a descriptor another
            // test closes meanwhile answers an error, which is skipped.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&fd);
            let local = socket.local_addr().ok()?.as_socket()?;
            let peer = socket.peer_addr().ok()?.as_socket()?;
            if (local, peer) != (server, client) {
                return None;
            }
            Some(socket.tcp_nodelay().expect("TCP_NODELAY readable"))
        })
}

#[actix_web::test]
async fn a_stream_socket_sends_each_write_at_once() {
    let app = spawn_app().await;
    let server = SocketAddr::from(([127, 0, 0, 1], app.port));
    let (client, _) = open_until(
        &app,
        b"GET /sse/events HTTP/1.1\r\nHost: x\r\n\r\n",
        "event: connected",
    )
    .await;

    let nodelay = server_side_nodelay(server, client.local_addr().expect("client address"))
        .expect("the broker's socket of this connection");
    assert!(nodelay, "Nagle's algorithm is on for the stream's socket");
}
