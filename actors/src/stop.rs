//! Why an actor stopped, typed: `StopReason`. ractor carries a stop reason as a string; this
//! module owns the stable strings, so supervisors match a variant, never a literal.

/// Why an actor of this crate stopped (the reason string ractor carries, typed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A room actor handed its room off, or a proxy found its owner moved: not a failure.
    Moved,
    /// A room nobody used for a while was passivated.
    Idle,
    /// The room was deleted.
    Deleted,
    /// The node shuts down.
    Shutdown,
    /// A session sent its last frames and closed its connection.
    Closed,
    /// A session's socket closed.
    Disconnected,
    /// An idle session handed its state to its `SessionRef` (it starts again on the next message).
    Parked,
    /// `ActorRef::kill` (ractor's own reason string).
    Killed,
}

impl StopReason {
    /// The stable string form ractor carries.
    pub const fn as_str(self) -> &'static str {
        match self {
            StopReason::Moved => "moved",
            StopReason::Idle => "idle",
            StopReason::Deleted => "deleted",
            StopReason::Shutdown => "shutdown",
            StopReason::Closed => "closed",
            StopReason::Disconnected => "disconnected",
            StopReason::Parked => "parked",
            StopReason::Killed => "killed",
        }
    }

    /// The argument of `ActorRef::stop` and friends.
    pub fn reason(self) -> Option<String> {
        Some(self.as_str().to_owned())
    }

    /// The reason a terminated actor gave, if it is one of ours.
    pub fn of(reason: Option<&str>) -> Option<StopReason> {
        const ALL: [StopReason; 8] = [
            StopReason::Moved,
            StopReason::Idle,
            StopReason::Deleted,
            StopReason::Shutdown,
            StopReason::Closed,
            StopReason::Disconnected,
            StopReason::Parked,
            StopReason::Killed,
        ];
        let reason = reason?;
        ALL.into_iter().find(|r| r.as_str() == reason)
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        for r in [StopReason::Moved, StopReason::Idle, StopReason::Killed, StopReason::Disconnected] {
            assert_eq!(StopReason::of(r.reason().as_deref()), Some(r));
        }
        assert_eq!(StopReason::of(Some("boom")), None);
        assert_eq!(StopReason::of(None), None);
    }
}
