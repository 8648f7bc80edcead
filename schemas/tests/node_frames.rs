//! Frames recorded from past node-to-node protocol versions still decode, and this build still
//! writes them byte for byte: a node of the previous version can be mixed into a cluster of this
//! one (rolling upgrades, `schemas/src/node.rs`). `tests/data/node-frames-v{N}.txt` holds one
//! sample of every frame as version N wrote it (`name hex` per line).
//!
//! Recording the current version's file (after a version bump, before the frames change):
//! `CONFAB_RECORD_NODE_FRAMES=1 cargo test -p confab-schemas --test node_frames`.

use confab_schemas::node::{
    CloseScope, JoinedInfo, NODE_PROTOCOL_VERSION, NodeFrame, SPOKEN_NODE_PROTOCOL_VERSIONS, decode_node_frame,
    encode_node_frame,
};
use confab_schemas::{Draft, ErrorCode, EventKind, Refusal, RoomId, UserId, UserRef};
use std::path::PathBuf;

/// One sample of every frame, with every optional field set once.
fn samples() -> Vec<(&'static str, NodeFrame)> {
    let room = RoomId(42);
    let ann = UserRef { id: UserId(7), username: "ann".into() };
    let frame = bytes::Bytes::from_static(br#"{"type":"message","seq":3}"#);
    let draft = Draft {
        cid: "c-1".into(),
        body: "hello".into(),
        reply_to: Some(2),
        kind: EventKind::Edit,
        target: Some(1),
        attachments: vec!["0123456789abcdef0123456789abcdef".into()],
    };
    vec![
        ("hello", NodeFrame::Hello { version: 5, cluster_id: "confab".into(), node_id: "n1".into() }),
        ("hello_ack", NodeFrame::HelloAck { node_id: "n2".into() }),
        ("subscribe", NodeFrame::Subscribe { room }),
        ("subscribed", NodeFrame::Subscribed { room, head: 9 }),
        ("unsubscribe", NodeFrame::Unsubscribe { room }),
        ("event", NodeFrame::Event { room, seq: 3, frame: frame.clone() }),
        ("ephemeral", NodeFrame::Ephemeral { room, except: Some(4), frame: frame.clone() }),
        ("join", NodeFrame::Join { room, req: 5, session: 6, user: ann.clone() }),
        (
            "join_result_ok",
            NodeFrame::JoinResult {
                room,
                req: 5,
                result: Ok(JoinedInfo { head: 9, online: vec![ann.clone()], online_count: 1 }),
            },
        ),
        (
            "join_result_refused",
            NodeFrame::JoinResult { room, req: 6, result: Err(Refusal::new(ErrorCode::NotMember, "private")) },
        ),
        ("leave", NodeFrame::Leave { room, session: 6 }),
        ("send", NodeFrame::Send { room, session: 6, user: ann.clone(), draft }),
        ("send_result", NodeFrame::SendResult { room, user: UserId(7), cid: "c-1".into(), frame: frame.clone() }),
        ("typing", NodeFrame::Typing { room, session: 6, user: ann.clone(), on: true }),
        ("restarted", NodeFrame::Restarted { room }),
        ("moved", NodeFrame::Moved { room }),
        ("close_user", NodeFrame::Close { scope: CloseScope::User(UserId(7)), reason: "bye".into(), reconnect: true }),
        (
            "close_family",
            NodeFrame::Close { scope: CloseScope::Family("f".into()), reason: "revoked".into(), reconnect: false },
        ),
        ("heartbeat", NodeFrame::Heartbeat),
        ("forget", NodeFrame::Forget { room, seqs: vec![1, 2] }),
        ("room_deleted", NodeFrame::RoomDeleted { room }),
        ("activity", NodeFrame::Activity { inboxes: vec![RoomId(1), RoomId(2)], frame: frame.clone() }),
        ("broadcast", NodeFrame::Broadcast { frame }),
    ]
}

fn file(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/node-frames-v{version}.txt"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn frames_of_every_spoken_version_decode_and_are_written_the_same() {
    if std::env::var_os("CONFAB_RECORD_NODE_FRAMES").is_some() {
        let text: String =
            samples().iter().map(|(name, f)| format!("{name} {}\n", hex(&encode_node_frame(f).unwrap()))).collect();
        std::fs::write(file(NODE_PROTOCOL_VERSION), text).expect("write the recording");
    }
    for version in SPOKEN_NODE_PROTOCOL_VERSIONS {
        let path = file(version);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}: every version this build speaks needs its recording", path.display()));
        let recorded: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(' ')).collect();
        let samples = samples();
        assert_eq!(recorded.len(), samples.len(), "v{version}: one line per sample");
        for ((name, bytes), (sample_name, sample)) in recorded.iter().zip(&samples) {
            assert_eq!(name, sample_name, "v{version}: the recording's order");
            let bytes = unhex(bytes);
            let decoded = decode_node_frame(&bytes).unwrap_or_else(|e| panic!("v{version} {name}: {e}"));
            assert_eq!(&decoded, sample, "v{version} {name} decodes to the sample");
            assert_eq!(encode_node_frame(sample).unwrap(), bytes, "v{version} {name}: this build writes it the same");
        }
    }
}
