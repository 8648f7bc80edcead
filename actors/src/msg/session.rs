//! What a session actor is told: frames its reader parsed, and the answers and notices of the
//! rooms it joined.

use bytes::Bytes;
use confab_schemas::{ClientFrame, RoomId};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Messages of a session actor.
pub(crate) enum SessionMsg {
    /// Parsed client frames, in the order they came; the permits return to the reader once
    /// they are handled.
    Frames(Vec<ClientFrame>, Option<OwnedSemaphorePermit>),
    /// A room stopped feeding this session: it fell behind after `last_seq`.
    Lagging { room: RoomId, last_seq: u64 },
    /// Close the connection with a reconnect hint (shutdown) or for good (logout, revocation).
    Close { reason: String, reconnect: bool },
    /// A room's answers to some of this session's sends: `frames` holds one `ack` or `error`
    /// frame per cid, in order, ready for the socket (one write however many there are). After a
    /// fan-out the room sends the cids alone first, before its acks can reach the socket behind
    /// the messages they answer, and the frames it could not write there come later, alone.
    SendResults { room: RoomId, cids: Vec<Arc<str>>, frames: Bytes },
    /// A room actor restarted (`crashed`) or the room moved to another node: sends it had not
    /// answered are sent again. Only crashes count against a send's resends.
    RoomRestarted { room: RoomId, crashed: bool },
    /// A room actor stopped and cannot start again for now (its storage takes no writes): its
    /// unanswered sends are refused with `retry`, and the client sends them again.
    RoomDown { room: RoomId },
    /// The user's place in the match queue was given to this session (a new connection of
    /// someone who waited): it waits here from now on (`crate::stranger`).
    StrangerPlace,
}
