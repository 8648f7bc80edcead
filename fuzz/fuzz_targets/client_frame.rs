//! The client-frame parser (`confab_schemas::parse::parse_client_frame`, hand-written for speed)
//! against serde's derive on `ClientFrame`, which it replaces and must agree with: the same frame
//! when both accept, and the same error code when both refuse.
#![no_main]

use confab_schemas::client::{ClientFrame, ErrorCode, parse_client_frame};
use libfuzzer_sys::fuzz_target;

/// The derive's error, classified as the protocol does (schemas/src/parse.rs, `classify`).
fn derived(text: &[u8]) -> Result<ClientFrame, ErrorCode> {
    serde_json::from_slice::<ClientFrame>(text).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("unknown variant") {
            ErrorCode::UnknownType
        } else if msg.starts_with("missing field") {
            ErrorCode::MissingField
        } else {
            ErrorCode::BadFrame
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let ours = parse_client_frame(data).map_err(|r| r.code);
    let theirs = derived(data);
    assert_eq!(ours, theirs, "input: {:?}", String::from_utf8_lossy(data));
});
