//! The TCP socket under a plain HTTP/1 stream, so that closing a stream
//! releases its socket at once.
//!
//! Closing a stream normally means failing its response body. actix polls a
//! body only while the socket can take more bytes, so for a client that
//! stays connected but stops reading (the slow and stale streams the broker
//! closes) the failure is never seen: the socket, its descriptor and the
//! megabytes queued in the kernel for it would stay until the client goes
//! away by itself. [`StreamSocket::reset`] tears the connection down from
//! the outside instead: `SO_LINGER` 0 drops what is queued, and `shutdown`
//! wakes actix's dispatcher, which sees the socket end and drops it; the
//! close then sends a reset.

use std::{
    os::fd::{AsRawFd, BorrowedFd, RawFd},
    time::Duration,
};

use actix_web::dev::Extensions;

/// The descriptor of one accepted plain-TCP connection.
///
/// Only a number: it stays valid exactly as long as actix keeps the
/// connection, which the holder must know before using it (see
/// [`StreamSocket::reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSocket(RawFd);

impl StreamSocket {
    /// Connect hook: remembers the descriptor of a plain TCP connection in
    /// its connection data (TLS or HTTP/2 connections, which carry more
    /// than one stream or more than bytes, are not remembered).
    pub fn remember(connection: &actix_web::rt::net::TcpStream, data: &mut Extensions) {
        data.insert(Self(connection.as_raw_fd()));
    }

    /// Caps the kernel's send buffer, so that a client that stops reading
    /// fills it (and then its stream's queue) after `bytes` rather than after
    /// the several megabytes the kernel would otherwise grant it.
    pub fn limit_send_buffer(self, bytes: usize) {
        // SAFETY: called from the request handler, while actix holds the
        // connection, so the descriptor is this connection's.
        let fd = unsafe { BorrowedFd::borrow_raw(self.0) };
        if let Err(error) = socket2::SockRef::from(&fd).set_send_buffer_size(bytes) {
            tracing::debug!(%error, "could not cap a stream's send buffer");
        }
    }

    /// Drops what the kernel holds for the peer and ends the connection now.
    ///
    /// # Safety
    ///
    /// The connection must still be open: call it only on the thread that
    /// serves the connection (the stream's worker), while the stream's
    /// response body is still alive. actix drops the body and the socket
    /// together on that thread, so neither can be dropped meanwhile and the
    /// descriptor cannot have been reused for another connection.
    pub unsafe fn reset(self) {
        // SAFETY: the caller guarantees the descriptor is still this
        // connection's (see above).
        let fd = unsafe { BorrowedFd::borrow_raw(self.0) };
        let socket = socket2::SockRef::from(&fd);
        let _ = socket.set_linger(Some(Duration::ZERO));
        if let Err(error) = socket.shutdown(std::net::Shutdown::Both) {
            tracing::debug!(%error, "could not shut a closed stream's socket down");
        }
    }
}
