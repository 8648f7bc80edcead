//! The node-to-node frame decoder (`confab_schemas::node::decode_node_frame`), on the plaintext a
//! peer could put inside a sealed Noise message. Properties: no panic, no allocation beyond the
//! input's worth (libFuzzer's `-rss_limit_mb` / `-malloc_limit_mb`), and whatever decodes encodes
//! again to bytes that decode to the same frame.
#![no_main]

use confab_schemas::node::{decode_node_frame, encode_node_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = decode_node_frame(data) else { return };
    let bytes = encode_node_frame(&frame).expect("a decoded frame encodes");
    let again = decode_node_frame(&bytes).expect("an encoded frame decodes");
    assert_eq!(again, frame, "the round trip changed the frame");
});
