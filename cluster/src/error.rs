//! The cluster crate's one error type.

/// What can go wrong joining or talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("undecodable node frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("gossip: {0}")]
    Gossip(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
