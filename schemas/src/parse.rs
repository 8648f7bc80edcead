//! `parse_client_frame`: a client's JSON frame, read in one pass.
//!
//! serde's derive for an internally tagged enum (`ClientFrame`) first buffers the whole frame
//! into a tree of its own, allocating for every key and string, and then reads the variant out
//! of that tree. Nearly every frame a busy server parses is a `send`, so the frame is read here
//! field by field straight into its variant's values. The result, and the error codes, are the
//! derive's: the equivalence test below compares the two on valid and invalid frames. Fuzzing
//! against the derive (fuzz/fuzz_targets/client_frame.rs) found where the codes part: a frame
//! wrong in two ways (the derive may name the other fault first), input that is no complete JSON,
//! and a JSON array, which the derive reads as a tagged enum and the parser refuses.

use crate::client::{ClientFrame, ErrorCode, Refusal};
use crate::ids::RoomId;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;

/// Parses a client frame and classifies a failure into the protocol's error codes.
pub fn parse_client_frame(text: &[u8]) -> Result<ClientFrame, Refusal> {
    let parsed = serde_json::from_slice::<Fields>(text)
        .map_err(|e| classify(e.to_string()))
        .and_then(|fields| fields.into_frame().map_err(classify));
    match parsed {
        // Not a chat frame: perhaps one of the match pool's (rare, so read by the derive).
        Err(r) if r.code == ErrorCode::UnknownType => {
            match serde_json::from_slice::<crate::stranger::StrangerFrame>(text) {
                Ok(f) => Ok(ClientFrame::Stranger(f)),
                Err(e) if e.to_string().starts_with("unknown variant") => Err(r),
                Err(e) => Err(classify(e.to_string())),
            }
        }
        // The derive lets a `ping` carry any fields, of any type; this reader types the fields
        // it knows before it may know the frame is a ping (`{"token":1,"type":"ping"}`). So a
        // bad frame is read once more by the derive, which has the last word on a ping (found
        // by fuzzing; a refused frame is rare, and this costs one more pass over its bytes).
        // Only an object: the derive would also take an array (`["ping"]`), which is no frame.
        Err(r) if r.code == ErrorCode::BadFrame && text.trim_ascii_start().starts_with(b"{") => {
            match serde_json::from_slice::<ClientFrame>(text) {
                Ok(ClientFrame::Ping) => Ok(ClientFrame::Ping),
                _ => Err(r),
            }
        }
        other => other,
    }
}

fn classify(msg: String) -> Refusal {
    let code = if msg.starts_with("unknown variant") {
        ErrorCode::UnknownType
    } else if msg.starts_with("missing field") {
        ErrorCode::MissingField
    } else {
        ErrorCode::BadFrame
    };
    Refusal { code, message: msg }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Auth,
    Join,
    Leave,
    Send,
    Typing,
    Edit,
    Delete,
    Read,
    Ping,
}

/// Every field of every client frame, as found.
#[derive(Default)]
struct Fields {
    kind: Option<Kind>,
    token: Option<String>,
    room: Option<RoomId>,
    since: Option<Option<u64>>,
    cid: Option<String>,
    body: Option<String>,
    reply_to: Option<Option<u64>>,
    on: Option<bool>,
    seq: Option<u64>,
    attachments: Option<Vec<String>>,
    /// The first key that is no field of any frame.
    unknown: Option<String>,
}

enum Key {
    Type,
    Token,
    Room,
    Since,
    Cid,
    Body,
    ReplyTo,
    On,
    Seq,
    Attachments,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "type" => Key::Type,
                    "token" => Key::Token,
                    "room" => Key::Room,
                    "since" => Key::Since,
                    "cid" => Key::Cid,
                    "body" => Key::Body,
                    "reply_to" => Key::ReplyTo,
                    "on" => Key::On,
                    "seq" => Key::Seq,
                    "attachments" => Key::Attachments,
                    other => Key::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Stores a field's value, refusing a second one.
fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a frame object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut f = Fields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Type => once(&mut f.kind, &mut map, "type")?,
                        Key::Token => once(&mut f.token, &mut map, "token")?,
                        Key::Room => once(&mut f.room, &mut map, "room")?,
                        Key::Since => once(&mut f.since, &mut map, "since")?,
                        Key::Cid => once(&mut f.cid, &mut map, "cid")?,
                        Key::Body => once(&mut f.body, &mut map, "body")?,
                        Key::ReplyTo => once(&mut f.reply_to, &mut map, "reply_to")?,
                        Key::On => once(&mut f.on, &mut map, "on")?,
                        Key::Seq => once(&mut f.seq, &mut map, "seq")?,
                        Key::Attachments => once(&mut f.attachments, &mut map, "attachments")?,
                        Key::Other(name) => {
                            f.unknown.get_or_insert(name);
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(f)
            }
        }
        d.deserialize_map(V)
    }
}

impl Fields {
    /// The frame its `type` names, with the derive's errors for fields that frame has not or
    /// lacks.
    fn into_frame(self) -> Result<ClientFrame, String> {
        let kind = self.kind.ok_or_else(|| missing("type"))?;
        let allowed: &'static [&'static str] = match kind {
            Kind::Auth => &["token"],
            Kind::Join => &["room", "since"],
            Kind::Leave => &["room"],
            Kind::Send => &["room", "cid", "body", "reply_to", "attachments"],
            Kind::Typing => &["room", "on"],
            Kind::Edit => &["room", "seq", "body", "cid"],
            Kind::Delete => &["room", "seq", "cid"],
            Kind::Read => &["room", "seq"],
            Kind::Ping => &[],
        };
        let present = [
            ("token", self.token.is_some()),
            ("room", self.room.is_some()),
            ("since", self.since.is_some()),
            ("cid", self.cid.is_some()),
            ("body", self.body.is_some()),
            ("reply_to", self.reply_to.is_some()),
            ("on", self.on.is_some()),
            ("seq", self.seq.is_some()),
            ("attachments", self.attachments.is_some()),
        ];
        let stray = self
            .unknown
            .as_deref()
            .or_else(|| present.iter().find(|(name, is)| *is && !allowed.contains(name)).map(|(name, _)| *name));
        // The derive lets a unit variant (`ping`) carry any fields.
        if let Some(name) = stray.filter(|_| kind != Kind::Ping) {
            return Err(<serde_json::Error as de::Error>::unknown_field(name, allowed).to_string());
        }
        let room = self.room.ok_or_else(|| missing("room"));
        Ok(match kind {
            Kind::Auth => ClientFrame::Auth { token: self.token.ok_or_else(|| missing("token"))? },
            Kind::Join => ClientFrame::Join { room: room?, since: self.since.flatten() },
            Kind::Leave => ClientFrame::Leave { room: room? },
            Kind::Send => ClientFrame::Send {
                room: room?,
                cid: self.cid.ok_or_else(|| missing("cid"))?,
                body: self.body.ok_or_else(|| missing("body"))?,
                reply_to: self.reply_to.flatten(),
                attachments: self.attachments.unwrap_or_default(),
            },
            Kind::Typing => ClientFrame::Typing { room: room?, on: self.on.ok_or_else(|| missing("on"))? },
            Kind::Edit => ClientFrame::Edit {
                room: room?,
                seq: self.seq.ok_or_else(|| missing("seq"))?,
                body: self.body.ok_or_else(|| missing("body"))?,
                cid: self.cid,
            },
            Kind::Delete => {
                ClientFrame::Delete { room: room?, seq: self.seq.ok_or_else(|| missing("seq"))?, cid: self.cid }
            }
            Kind::Read => ClientFrame::Read { room: room?, seq: self.seq.ok_or_else(|| missing("seq"))? },
            Kind::Ping => ClientFrame::Ping,
        })
    }
}

fn missing(name: &'static str) -> String {
    <serde_json::Error as de::Error>::missing_field(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde's derive makes of a frame: the value, or the error code.
    fn derived(text: &str) -> Result<ClientFrame, ErrorCode> {
        serde_json::from_str::<ClientFrame>(text).map_err(|e| classify(e.to_string()).code)
    }

    #[test]
    fn agrees_with_the_derive() {
        let frames = [
            r#"{"type":"send","room":1,"cid":"a","body":"hi"}"#,
            r#"{"body":"hi \"q\" \u00e9","cid":"a","room":1,"type":"send","reply_to":7}"#,
            r#"{"type":"send","room":1,"cid":"a","body":"hi","reply_to":null}"#,
            r#"{"type":"send","room":1,"cid":"a","body":"","attachments":["x","y"]}"#,
            r#"{"type":"send","room":1,"cid":"a","body":"","attachments":[]}"#,
            r#"{"type":"send","room":1,"cid":"a","body":"","attachments":null}"#,
            r#"{"type":"send","room":1,"cid":"a","body":"","attachments":[1]}"#,
            r#"{"type":"edit","room":3,"seq":9,"body":"x","attachments":["x"]}"#,
            r#"{"type":"join","room":3,"since":7}"#,
            r#"{"type":"join","room":3,"since":null}"#,
            r#"{"type":"join","room":3}"#,
            r#"{"type":"leave","room":3}"#,
            r#"{"type":"typing","room":3,"on":true}"#,
            r#"{"type":"read","room":3,"seq":9}"#,
            r#"{"type":"edit","room":3,"seq":9,"body":"new"}"#,
            r#"{"type":"edit","room":3,"seq":9,"body":"new","cid":"e1"}"#,
            r#"{"type":"edit","room":3,"body":"new"}"#,
            r#"{"type":"edit","room":3,"seq":9}"#,
            r#"{"type":"edit","room":3,"seq":9,"body":"x","reply_to":2}"#,
            r#"{"type":"delete","room":3,"seq":9}"#,
            r#"{"type":"delete","room":3,"seq":9,"cid":"d1"}"#,
            r#"{"type":"delete","room":3,"seq":9,"body":"x"}"#,
            r#"{"type":"delete","room":3}"#,
            r#"{"type":"auth","token":"t"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"dance"}"#,
            r#"{"type":"send","room":1}"#,
            r#"{"type":"send","room":1,"cid":"a"}"#,
            r#"{"type":"send","cid":"a","body":"b"}"#,
            r#"{"type":"send","room":1,"cid":"a","body":"hi","on":true}"#,
            r#"{"type":"send","room":1,"cid":"a","body":"hi","extra":1}"#,
            r#"{"type":"ping","room":1}"#,
            r#"{"type":"ping","whatever":[1]}"#,
            r#"{"type":"typing","room":3}"#,
            r#"{"type":"read","room":3}"#,
            r#"{"type":"auth"}"#,
            r#"{"room":1}"#,
            r#"{"type":5}"#,
            r#"{"type":"send","room":"x","cid":"a","body":"b"}"#,
            r#"{"type":"send","room":-1,"cid":"a","body":"b"}"#,
            r#"{"type":"send","room":1,"cid":7,"body":"b"}"#,
            r#"{"type":"read","room":1,"seq":-1}"#,
            r#"{"type":"send","room":1,"room":2,"cid":"a","body":"b"}"#,
            r#"[1,2]"#,
            r#""send""#,
            "not json",
            r#"{"type":"send","room":1,"cid":"a","body":"b"} trailing"#,
            "",
        ];
        for text in frames {
            let ours = parse_client_frame(text.as_bytes()).map_err(|r| r.code);
            assert_eq!(ours, derived(text), "{text}");
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/client_frame.rs): serde's derive reads a JSON array
    /// as an internally tagged enum, tag first; a frame is an object, so the parser refuses it.
    #[test]
    fn an_array_is_no_frame() {
        for text in [r#"["send",1,"c","hi"]"#, r#"[",iqgytcide[","r"}"#, r#"["ping"]"#] {
            let err = parse_client_frame(text.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadFrame, "{text}");
        }
        assert!(serde_json::from_str::<ClientFrame>(r#"["send",1,"c","hi"]"#).is_ok(), "the derive would take it");
    }

    /// Found by fuzzing: a `ping` takes any fields, as the derive's, even a known one of another
    /// type; other frames still refuse it.
    #[test]
    fn a_ping_takes_any_fields() {
        for text in [r#"{"type" :"ping","token":76}"#, r#"{"token":76,"type":"ping"}"#, r#"{"type":"ping","on":"x"}"#] {
            assert_eq!(parse_client_frame(text.as_bytes()).unwrap(), ClientFrame::Ping, "{text}");
            assert_eq!(serde_json::from_str::<ClientFrame>(text).unwrap(), ClientFrame::Ping, "{text}");
        }
        let err = parse_client_frame(br#"{"type":"auth","token":76}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadFrame);
    }

    /// Found by fuzzing: an object missing `type` followed by bytes that make the input no JSON
    /// at all is a `bad_frame` (the derive reports the missing field first).
    #[test]
    fn bytes_after_the_object_make_a_bad_frame_whatever_it_lacks() {
        let text = b"{\"ty)e\":\"leave\",\"ro!m\":4}\xff\xff";
        assert_eq!(parse_client_frame(text).unwrap_err().code, ErrorCode::BadFrame);
    }

    /// Found by fuzzing: a frame cut short is refused, whatever its type (the code may be
    /// `unknown_type` where the type came first, as with the derive).
    #[test]
    fn a_truncated_frame_is_refused() {
        for text in [r#"{"type":""#, r#"{"type":"dance""#, r#"{"type":"send","room":1"#] {
            assert!(parse_client_frame(text.as_bytes()).is_err(), "{text}");
        }
    }

    #[test]
    fn reads_the_match_pools_frames() {
        use crate::stranger::StrangerFrame;
        let f = parse_client_frame(br#"{"type":"match","interests":["Cats"],"fewer":true}"#).unwrap();
        assert_eq!(f, ClientFrame::Stranger(StrangerFrame::Match { interests: vec!["Cats".into()], fewer: true }));
        let f = parse_client_frame(br#"{"type":"unmatch"}"#).unwrap();
        assert_eq!(f, ClientFrame::Stranger(StrangerFrame::Unmatch {}));
        assert_eq!(parse_client_frame(br#"{"type":"unmatch","room":1}"#).unwrap_err().code, ErrorCode::BadFrame);
        let f = parse_client_frame(br#"{"type":"stranger_block"}"#).unwrap();
        assert_eq!(f, ClientFrame::Stranger(StrangerFrame::StrangerBlock {}));
        assert_eq!(parse_client_frame(br#"{"type":"stranger_block","who":1}"#).unwrap_err().code, ErrorCode::BadFrame);
        let f = parse_client_frame(br#"{"type":"stranger_resume"}"#).unwrap();
        assert_eq!(f, ClientFrame::Stranger(StrangerFrame::StrangerResume {}));
        let bad = parse_client_frame(br#"{"type":"match","interests":"cats"}"#).unwrap_err();
        assert_eq!(bad.code, ErrorCode::BadFrame);
        let bad = parse_client_frame(br#"{"type":"next","colour":1}"#).unwrap_err();
        assert_eq!(bad.code, ErrorCode::BadFrame);
        assert_eq!(parse_client_frame(br#"{"type":"dance"}"#).unwrap_err().code, ErrorCode::UnknownType);
    }

    #[test]
    fn names_the_field_in_errors() {
        let msg = parse_client_frame(br#"{"type":"send","room":1,"cid":"a"}"#).unwrap_err().message;
        assert_eq!(msg, "missing field `body`");
        let msg = parse_client_frame(br#"{"type":"typing","room":1,"on":true,"seq":2}"#).unwrap_err().message;
        assert_eq!(msg, "unknown field `seq`, expected `room` or `on`");
    }
}
