//! Criterion benchmarks of the node-to-node protocol: postcard encoding and decoding of
//! `NodeFrame`s (the handshake frames, the only variants so far).

use confab_schemas::node::{NODE_PROTOCOL_VERSION, NodeFrame, decode_node_frame, encode_node_frame};
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};

fn frames() -> Vec<(&'static str, NodeFrame)> {
    vec![
        (
            "hello",
            NodeFrame::Hello {
                version: NODE_PROTOCOL_VERSION,
                cluster_id: "confab-production-eu".into(),
                node_id: "node-7f3a9c2e-4b1d".into(),
            },
        ),
        ("hello_ack", NodeFrame::HelloAck { node_id: "node-7f3a9c2e-4b1d".into() }),
    ]
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("node_frame/encode");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in frames() {
        g.bench_function(name, |b| b.iter(|| encode_node_frame(black_box(&frame)).expect("encodes")));
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("node_frame/decode");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in frames() {
        let bytes = encode_node_frame(&frame).expect("encodes");
        g.bench_function(name, |b| b.iter(|| decode_node_frame(black_box(&bytes)).expect("decodes")));
    }
    g.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
