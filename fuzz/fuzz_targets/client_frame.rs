//! The client-frame parser (`confab_schemas::parse::parse_client_frame`, hand-written for speed)
//! against serde's derive on `ClientFrame`, which it replaces: on every input that is one JSON
//! object both accept the same frame or both refuse (the error code can differ for a frame
//! wrong in two ways, see below); anything else the parser refuses.
#![no_main]

use confab_schemas::client::{ClientFrame, ErrorCode, parse_client_frame};
use confab_schemas::stranger::StrangerFrame;
use libfuzzer_sys::fuzz_target;

/// A derive's error, classified as the protocol does (schemas/src/parse.rs, `classify`).
fn classify(e: serde_json::Error) -> ErrorCode {
    let msg = e.to_string();
    if msg.starts_with("unknown variant") {
        ErrorCode::UnknownType
    } else if msg.starts_with("missing field") {
        ErrorCode::MissingField
    } else {
        ErrorCode::BadFrame
    }
}

/// The derive's frame: `ClientFrame`'s, or for a type it does not know, the match pool's
/// (`StrangerFrame`, which the parser reads beside the others as `ClientFrame::Stranger`).
fn derived(text: &[u8]) -> Result<ClientFrame, ErrorCode> {
    match serde_json::from_slice::<ClientFrame>(text).map_err(classify) {
        Err(ErrorCode::UnknownType) => match serde_json::from_slice::<StrangerFrame>(text).map_err(classify) {
            Ok(frame) => Ok(ClientFrame::Stranger(frame)),
            Err(code) => Err(code),
        },
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    // The parser is handed text messages only, which the frame reader has checked are UTF-8;
    // on other bytes it may accept a `ping` whose ignored fields are not UTF-8 (found here).
    if std::str::from_utf8(data).is_err() {
        return;
    }
    let ours = parse_client_frame(data).map_err(|r| r.code);
    // A frame is one JSON object. Where the input is not one, the parser must refuse it, but
    // the code may differ from the derive's: the derive also reads an array as an internally
    // tagged enum (tag first, then the fields in order: `["send",1,"c","hi"]`), which the
    // protocol never defined (the parser: `bad_frame`), and which error of a broken input
    // comes first depends on how far each reads before it fails (`{"type":"dance"` cut short
    // is `unknown_type` to both, `{"type":""` cut short `bad_frame` to the derive only).
    let object = serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| v.is_object());
    if !object {
        assert!(ours.is_err(), "accepted: {:?}", String::from_utf8_lossy(data));
        if data.trim_ascii_start().starts_with(b"[") {
            assert_eq!(ours, Err(ErrorCode::BadFrame), "an array: {:?}", String::from_utf8_lossy(data));
        }
        return;
    }
    // On an object both accept the same frames, or refuse; which fault a frame wrong in two
    // ways is refused for may differ (`{"typem":3,"on":3}`: the derive, which buffers a frame
    // whose tag is not first, names the missing `type`; the parser the `on` that is no bool).
    match (ours, derived(data)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "input: {:?}", String::from_utf8_lossy(data)),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("parser {a:?}, derive {b:?}: {:?}", String::from_utf8_lossy(data)),
    }
});
