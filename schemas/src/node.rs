//! The node-to-node protocol: versioned postcard frames behind a handshake.
//!
//! Every frame is a variant of one enum (appending variants keeps old decoders working; adding
//! fields to a variant does not, so such a change bumps `NODE_PROTOCOL_VERSION`). The single-node
//! build only uses the handshake; routing frames arrive with the cluster.

use serde::{Deserialize, Serialize};

/// Version carried in the handshake; peers with another version are refused.
pub const NODE_PROTOCOL_VERSION: u32 = 1;
/// Largest node-to-node frame accepted, checked before a frame is read.
pub const MAX_NODE_FRAME: usize = 4 * 1024 * 1024;

/// A frame between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeFrame {
    Hello { version: u32, cluster_id: String, node_id: String },
    HelloAck { node_id: String },
}

/// Encodes a node frame with postcard.
pub fn encode_node_frame(frame: &NodeFrame) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(frame)
}

/// Decodes a node frame, refusing oversize input before decoding.
pub fn decode_node_frame(bytes: &[u8]) -> Result<NodeFrame, postcard::Error> {
    if bytes.len() > MAX_NODE_FRAME {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_roundtrips() {
        let hello = NodeFrame::Hello { version: NODE_PROTOCOL_VERSION, cluster_id: "c".into(), node_id: "n1".into() };
        let bytes = encode_node_frame(&hello).unwrap();
        assert_eq!(decode_node_frame(&bytes).unwrap(), hello);
        assert!(decode_node_frame(&[0xff, 0xff, 0xff]).is_err());
    }
}
