//! Criterion benchmarks of the client wire path: encoding a `message` frame once for a room's
//! fan-out (`encode_server_frame`), and parsing an inbound `send` frame (`parse_client_frame`).

use confab_schemas::client::parse_client_frame;
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{MessageRow, RoomId, ServerFrame, UserId};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::sync::Arc;

fn row(body_len: usize) -> MessageRow {
    MessageRow {
        id: 1_234_567,
        room: RoomId(42),
        seq: 987_654,
        sender: UserId(77),
        sender_name: Arc::from("alice_the_sender"),
        cid: Arc::from("c-0123456789abcdef"),
        body: Arc::from("x".repeat(body_len)),
        reply_to: Some(987_600),
        ts: 1_795_000_000_000,
        edited_at: None,
        deleted: false,
        kind: confab_schemas::EventKind::Message,
        target: None,
        attachments: Vec::new(),
    }
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_server_frame/message");
    for body_len in [32usize, 512, 4000] {
        let r = row(body_len);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("body {body_len} B"), |b| {
            // The room builds the frame from its row and encodes it once per message.
            b.iter(|| encode_server_frame(&ServerFrame::message(black_box(&r), &confab_schemas::attachments::NoUrls)))
        });
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_client_frame/send");
    for body_len in [32usize, 512] {
        let json = format!(
            r#"{{"type":"send","room":42,"cid":"c-0123456789abcdef","body":"{}","reply_to":null}}"#,
            "x".repeat(body_len)
        );
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("body {body_len} B"), |b| b.iter(|| parse_client_frame(black_box(json.as_bytes()))));
    }
    g.finish();
}

criterion_group!(benches, encode, parse);
criterion_main!(benches);
