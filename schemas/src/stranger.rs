//! The stranger chat's protocol: what a client asks of the match pool (`StrangerFrame`, parsed
//! beside `ClientFrame` as its `Stranger` variant), the pool's key in the cluster, and how a
//! stranger chat names its two people.
//!
//! Frames (client → server): `{"type":"match","interests":[…],"fewer":true}` enters the queue
//! (or, for someone in a chat already, answers `matched` again), `{"type":"unmatch"}` leaves the
//! queue and the chat, `{"type":"next","interests":[…]}` leaves the chat and enters the queue,
//! `{"type":"stranger_report","reason":"…"}` reports the chat to moderators and leaves it,
//! `{"type":"stranger_block"}` blocks the stranger of the chat (never paired again) and leaves it,
//! `{"type":"stranger_resume"}` (after a reconnect or reload) asks where one was.
//! Server → client: `waiting`, `matched`, `unmatched` (see `ServerFrame`).
//!
//! In a stranger chat each side is shown as `Stranger`: its two members get the aliases
//! `STRANGER_SEATS` (negative ids, never a user's) in every frame and history page, so neither
//! learns the other's id or name; `matched.you` says which alias is one's own.

use crate::client::UserRef;
use crate::ids::{RoomId, UserId};
use serde::{Deserialize, Serialize};

/// The match pool's key: placed by rendezvous hashing like a room (room ids are positive, inbox
/// ids negative; no room has id 0), so exactly one node runs the pool.
pub const MATCH_POOL: RoomId = RoomId(0);

/// How a stranger is named.
pub const STRANGER_NAME: &str = "Stranger";

/// The ids the two members of a stranger chat are shown as (its first and second seat).
pub const STRANGER_SEATS: [UserId; 2] = [UserId(-1), UserId(-2)];

/// Most interests one may enter with.
pub const MAX_INTERESTS: usize = 10;

/// A client's request to the match pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StrangerFrame {
    /// Enter the queue with these interests; `fewer`: after the wait, accept a stranger with
    /// fewer shared interests, or none.
    Match {
        #[serde(default)]
        interests: Vec<String>,
        #[serde(default)]
        fewer: bool,
    },
    /// Leave the queue, and the chat one is in. (Field-less variants are written `{}` so that
    /// unknown fields are refused as in the others: serde ignores them on a unit variant.)
    Unmatch {},
    /// Leave the chat one is in and enter the queue again.
    Next {
        #[serde(default)]
        interests: Vec<String>,
        #[serde(default)]
        fewer: bool,
    },
    /// Report the chat one is in (it is kept for moderators) and leave it.
    StrangerReport {
        #[serde(default)]
        reason: String,
    },
    /// Block the stranger of the chat one is in (the two are never paired again; neither learns
    /// who the other is) and leave it.
    StrangerBlock {},
    /// Where am I? Sent by a client that reconnects or reloads while it was waiting or in a
    /// chat: answered `matched` with the chat one sits in, `waiting` (the queue place, kept for
    /// the reconnect grace, taken over by this connection), or `unmatched` (neither).
    StrangerResume {},
}

/// The two members of a stranger chat, in seat order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seats(pub [UserId; 2]);

impl Seats {
    /// How `user` is shown in the chat: a seat's alias for its members; anyone else (staff) as
    /// they are.
    pub fn shown(&self, user: &UserRef) -> UserRef {
        match self.0.iter().position(|u| *u == user.id) {
            Some(i) => UserRef { id: STRANGER_SEATS[i], username: STRANGER_NAME.into() },
            None => user.clone(),
        }
    }

    /// The alias of `user`, if a member.
    pub fn alias(&self, user: UserId) -> Option<UserId> {
        self.0.iter().position(|u| *u == user).map(|i| STRANGER_SEATS[i])
    }
}

impl Seats {
    /// `frame` with the chat's members shown as their aliases (every user a room frame names).
    pub fn mask(&self, mut frame: crate::ServerFrame) -> crate::ServerFrame {
        use crate::{ServerFrame as F, SystemEvent as E};
        match &mut frame {
            F::Message { from, .. } | F::Edited { from, .. } => *from = self.shown(from),
            F::Deleted { by, .. } => *by = self.shown(by),
            F::System { by, event, .. } => {
                *by = self.shown(by);
                match event {
                    E::MemberAdded { user } | E::MemberLeft { user } | E::MemberRemoved { user } => {
                        *user = self.shown(user)
                    }
                    E::OwnerChanged { owner } => *owner = self.shown(owner),
                    E::Mention { from, .. } => *from = self.shown(from),
                    _ => {}
                }
            }
            F::Typing { user, .. } | F::Presence { user, .. } => *user = self.shown(user),
            F::Joined { online, .. } => {
                for u in online.iter_mut() {
                    *u = self.shown(u);
                }
            }
            _ => {}
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerFrame;

    #[test]
    fn masks_every_user_a_room_frame_names() {
        let seats = Seats([UserId(7), UserId(9)]);
        let ann = UserRef { id: UserId(9), username: "ann".into() };
        let typing = seats.mask(ServerFrame::Typing { room: RoomId(3), user: ann.clone(), on: true });
        let text = serde_json::to_string(&typing).unwrap();
        assert!(!text.contains("ann") && text.contains(r#""id":-2,"username":"Stranger""#), "{text}");
        let joined = seats.mask(ServerFrame::Joined { room: RoomId(3), head: 0, online: vec![ann], online_count: 1 });
        assert!(!serde_json::to_string(&joined).unwrap().contains("ann"));
        let staff = UserRef { id: UserId(1), username: "mod".into() };
        assert_eq!(seats.shown(&staff), staff);
    }
}
