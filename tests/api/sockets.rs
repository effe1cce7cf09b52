//! The broker's end of a connection: every write leaves at once
//! (`TCP_NODELAY`), so a stream never waits for the client's delayed
//! acknowledgement of the previous event.

use std::{
    net::SocketAddr,
    os::fd::{BorrowedFd, RawFd},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{SHORT, spawn_app};

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
    let server: SocketAddr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("the broker's address");
    let mut client = TcpStream::connect(server).await.expect("connected");
    client
        .write_all(b"GET /sse/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request sent");
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&head).contains("event: connected") {
        let read = tokio::time::timeout(SHORT, client.read(&mut buffer))
            .await
            .expect("the stream's first frame in time")
            .expect("readable");
        assert!(read > 0, "closed: {:?}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&buffer[..read]);
    }

    let nodelay = server_side_nodelay(server, client.local_addr().expect("client address"))
        .expect("the broker's socket of this connection");
    assert!(nodelay, "Nagle's algorithm is on for the stream's socket");
}
