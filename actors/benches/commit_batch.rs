//! Criterion benchmark of the writer's batched commit, `Store::commit_batch`, on a temporary
//! SQLite file: one transaction of 1, 100 or 1,000 messages of one room (lease and head check,
//! multi-row insert, commit), with `synchronous = full` (the default) and `normal`.

use confab_actors::Store;
use confab_actors::store::{NewMessage, SqliteSync, WriteOutcome};
use confab_schemas::{Role, RoomId, UserId, Visibility};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Fixture {
    store: Store,
    room: RoomId,
    sender: UserId,
    epoch: u64,
    next_seq: u64,
    _dir: tempfile::TempDir,
}

async fn fixture(sync: SqliteSync) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::connect(&url, sync).await.expect("open the store");
    let user = store.create_user("bench_writer", "not-a-hash", Role::User).await.expect("user");
    let room = store.create_room("bench", "", Visibility::Public, Some(user.id)).await.expect("room");
    let epoch = store.take_lease(room.id, "bench-node", 60_000).await.expect("lease");
    Fixture { store, room: room.id, sender: user.id, epoch, next_seq: 1, _dir: dir }
}

impl Fixture {
    /// The next `n` messages of the room, continuing its head (as the room actor would send them).
    fn batch(&mut self, n: usize) -> Vec<NewMessage> {
        let body: Arc<str> = Arc::from("a chat message of a typical length, about sixty bytes long.");
        (0..n)
            .map(|_| {
                let seq = self.next_seq;
                self.next_seq += 1;
                NewMessage {
                    room: self.room,
                    epoch: self.epoch,
                    seq,
                    sender: self.sender,
                    ts: 1_795_000_000_000 + seq as i64,
                    draft: confab_schemas::Draft::message(Arc::from(format!("c{seq}")), body.clone(), None),
                    mentions: Vec::new(),
                    attachments: Vec::new(),
                }
            })
            .collect()
    }
}

fn commit_batch(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (sync_name, sync) in [("full", SqliteSync::Full), ("normal", SqliteSync::Normal)] {
        let mut g = c.benchmark_group(format!("commit_batch/sqlite_{sync_name}"));
        let mut fx = rt.block_on(fixture(sync));
        for n in [1usize, 100, 1000] {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Building the batch is the room actor's work, not the commit's: untimed.
                        let msgs = fx.batch(n);
                        let start = Instant::now();
                        let out = rt.block_on(fx.store.commit_batch(&msgs, &[])).expect("commit");
                        total += start.elapsed();
                        assert!(out.iter().all(|o| matches!(o, WriteOutcome::Committed { .. })), "all committed");
                    }
                    total
                })
            });
        }
        g.finish();
        rt.block_on(fx.store.close());
    }
}

criterion_group!(benches, commit_batch);
criterion_main!(benches);
