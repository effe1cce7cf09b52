//! One open stream, as everything that handles it shares it: its id, the
//! frames in its queue, its counters, its HTTP body, its socket, why it
//! ends, and the resume hand-off. It imports no actor, so the Registry, the
//! Connection actor, the Janitor and the listings all build on it without
//! depending on each other.

mod body;
pub mod catch_up;
mod close;
mod format;
mod frame;
mod greeting;
pub mod hand_off;
mod id;
pub mod message_parts;
mod recent;
pub mod replay;
mod socket;
mod stats;
mod ui_message;

pub use body::{StreamAborted, StreamBody, StreamParts};
pub use close::{Close, CloseReason};
pub use format::StreamFormat;
pub use frame::OutboundFrame;
pub use greeting::Greeting;
pub use id::ConnectionId;
pub use recent::{RecentFrame, RecentFrames, RecentPage};
pub use socket::StreamSocket;
pub use stats::ConnectionStats;
pub use ui_message::{MessageReader, UiMessageBody};
