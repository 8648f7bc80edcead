//! The messages the node's actors exchange, and the typed handles that send them.
//!
//! Leaf modules: they import no actor, so every actor module can depend on them without an
//! import circle (room, session, directory, proxy and writer each know the messages they send,
//! never each other). The enums are the crate's own; other crates hold a handle (`RoomHandle`,
//! `InboxHandle`) and call its methods.

pub(crate) mod directory;
pub mod room;
pub(crate) mod session;

pub use room::{InboxHandle, RoomHandle};
