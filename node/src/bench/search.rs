//! `confab bench search`: full-text search on a large store. It fills a fresh database with N
//! generated messages (default 1,000,000) straight through `Store::commit_batch`, the writer's own
//! commit (the same SQL and index maintenance, in batches of 2,000; no actors, no sockets), then
//! times typical queries through `Store::search` (the SQL and the snippets; no HTTP) and prints
//! p50 and p99 per query, the matches each query has, and the size of the index. On PostgreSQL
//! it runs `VACUUM ANALYZE messages` between the two, as autovacuum would after such a load.
//!
//! The corpus: words drawn from a 20,000-word vocabulary with Zipf frequencies (rank r has weight
//! 1/r, as in natural text), 4 to 16 words a message, spread over `--rooms` rooms; the searching
//! user is a member of `--member-rooms` of them. The seed is fixed, so every run stores the same
//! messages.

use anyhow::{Context, bail};
use clap::Args;
use confab_actors::store::{NewMessage, SearchFilter, SearchQuery, SqliteSync, Store, WriteOutcome};
use confab_schemas::{Draft, Role, RoomId, Visibility};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub(crate) struct SearchArgs {
    /// The database to fill: `sqlite://PATH` (a new file) or `postgres://…` (an empty database).
    #[arg(long)]
    database_url: String,
    /// Messages to store.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Rooms the messages are spread over.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Rooms of those the searching user is a member of.
    #[arg(long, default_value_t = 20)]
    member_rooms: usize,
    /// Runs of each query (after 3 to warm up); fewer when a query takes longer than
    /// `--seconds-per-query` in all.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    #[arg(long, default_value_t = 20.0)]
    seconds_per_query: f64,
}

/// Words in the vocabulary.
const VOCABULARY: usize = 20_000;
/// Messages per commit, as a busy writer's batch (`--max-batch` is 2,000).
const BATCH: usize = 2_000;

/// The word of rank `r` (0-based): syllables, unique per rank.
fn word(r: usize) -> String {
    const SYL: [&str; 40] = [
        "ka", "ri", "to", "ne", "mu", "sa", "lo", "vi", "de", "po", "ha", "gu", "fe", "zo", "bi", "ta", "le", "mo",
        "nu", "si", "ra", "ko", "we", "yi", "chu", "pla", "dro", "ste", "qua", "fli", "gro", "sna", "tre", "blo",
        "kri", "spu", "tha", "vor", "mel", "dan",
    ];
    // Two syllables at least (r + 40 has two digits in base 40), so no word is an English one.
    let mut n = r + SYL.len();
    let mut s = String::new();
    while n > 0 {
        s.push_str(SYL[n % SYL.len()]);
        n /= SYL.len();
    }
    s
}

/// Zipf sampling over `VOCABULARY` ranks: cumulative weights, and a binary search.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut acc = 0.0;
        Zipf(
            (1..=n)
                .map(|r| {
                    acc += 1.0 / r as f64;
                    acc
                })
                .collect(),
        )
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let x = rng.r#gen::<f64>() * self.0[self.0.len() - 1];
        self.0.partition_point(|&c| c < x).min(self.0.len() - 1)
    }
}

/// A query to time.
struct Probe {
    name: String,
    query: String,
    room: Option<RoomId>,
    /// Messages of the whole store that match (counted while generating).
    matches: usize,
}

pub(crate) async fn run(a: &SearchArgs) -> anyhow::Result<bool> {
    if a.messages == 0 || a.rooms == 0 || a.member_rooms == 0 || a.member_rooms > a.rooms || a.runs == 0 {
        bail!("need messages, rooms, runs ≥ 1 and 1 ≤ member-rooms ≤ rooms");
    }
    let store = Store::connect(&a.database_url, SqliteSync::Full).await.context("opening the database")?;
    if store.head_seq(RoomId(1)).await? > 0 || store.user_by_name("searcher").await?.is_some() {
        bail!("the database is not empty: give a new SQLite file or an empty PostgreSQL database");
    }
    let searcher = store.create_user("searcher", "-", Role::User).await?;
    let mut senders = Vec::new();
    for i in 0..10 {
        senders.push(store.create_user(&format!("sender{i}"), "-", Role::User).await?.id);
    }
    let mut rooms = Vec::new();
    for i in 0..a.rooms {
        let room = store.create_room(&format!("room{i}"), "", Visibility::Private, Some(senders[i % 10])).await?;
        if i < a.member_rooms {
            store.add_member(room.id, searcher.id).await?;
        }
        let epoch = store.take_lease(room.id, "bench", 3_600_000).await?;
        rooms.push((room.id, epoch));
    }

    // The probes' words: a common word (rank 20), a rare one (rank 5,000), a phrase of two
    // frequent words (ranks 2 and 3, side by side).
    let (common, rare, p1, p2) = (word(19), word(4_999), word(1), word(2));
    let (mut n_common, mut n_rare, mut n_phrase) = (0usize, 0usize, 0usize);
    let (mut r_common, mut r_rare, mut r_phrase) = (0usize, 0usize, 0usize);
    let zipf = Zipf::new(VOCABULARY);
    let words: Vec<String> = (0..VOCABULARY).map(word).collect();
    let mut rng = StdRng::seed_from_u64(18);
    let mut seqs = vec![0u64; a.rooms];
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut committed = 0usize;
    eprintln!("storing {} messages in {} rooms…", a.messages, a.rooms);
    for i in 0..a.messages {
        let r = i % a.rooms;
        seqs[r] += 1;
        let len = rng.gen_range(4..=16);
        let picked: Vec<usize> = (0..len).map(|_| zipf.sample(&mut rng)).collect();
        let body: Vec<&str> = picked.iter().map(|&w| words[w].as_str()).collect();
        let has = |w: usize| picked.contains(&w);
        let phrase = picked.windows(2).any(|p| p == [1, 2]);
        n_common += has(19) as usize;
        n_rare += has(4_999) as usize;
        n_phrase += phrase as usize;
        if r == 0 {
            r_common += has(19) as usize;
            r_rare += has(4_999) as usize;
            r_phrase += phrase as usize;
        }
        batch.push(NewMessage {
            room: rooms[r].0,
            epoch: rooms[r].1,
            seq: seqs[r],
            sender: senders[rng.gen_range(0..senders.len())],
            ts: 1_700_000_000_000 + i as i64,
            draft: Draft::message(Arc::from(format!("c{i}")), Arc::from(body.join(" ")), None),
            mentions: Vec::new(),
            attachments: Vec::new(),
        });
        if batch.len() == BATCH || i + 1 == a.messages {
            let out = store.commit_batch(&batch, &[]).await?;
            if !out.iter().all(|o| matches!(o, WriteOutcome::Committed { .. })) {
                bail!("a batch was refused: {:?}", out.iter().find(|o| !matches!(o, WriteOutcome::Committed { .. })));
            }
            committed += batch.len();
            batch.clear();
            if committed.is_multiple_of(100_000) {
                eprintln!("  {committed} in {:.0} s", started.elapsed().as_secs_f64());
            }
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    store.settle_after_bulk_load().await?;

    let member = a.member_rooms as f64 / a.rooms as f64;
    let in_room = rooms[0].0;
    let probes = [
        Probe { name: "common word".into(), query: common.clone(), room: None, matches: n_common },
        Probe { name: "common word, room=".into(), query: common, room: Some(in_room), matches: r_common },
        Probe { name: "rare word".into(), query: rare.clone(), room: None, matches: n_rare },
        Probe { name: "rare word, room=".into(), query: rare, room: Some(in_room), matches: r_rare },
        Probe { name: "phrase".into(), query: format!("\"{p1} {p2}\""), room: None, matches: n_phrase },
        Probe { name: "phrase, room=".into(), query: format!("\"{p1} {p2}\""), room: Some(in_room), matches: r_phrase },
    ];
    println!("confab bench search");
    println!(
        "  backend {:?}, {} messages in {} rooms (searcher a member of {}), stored in {:.1} s ({:.0} msg/s, batches of {BATCH}, index on)",
        store.backend(),
        a.messages,
        a.rooms,
        a.member_rooms,
        load_secs,
        a.messages as f64 / load_secs
    );
    println!(
        "  {:<20} {:<24} {:>9} {:>10} {:>6} {:>9} {:>9} {:>9}",
        "query", "q", "matches", "in rooms", "runs", "p50 ms", "p99 ms", "max ms"
    );
    for p in &probes {
        let query = SearchQuery::parse(&p.query).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let filter = SearchFilter { user: searcher.id, room: p.room, from: None, before: None, limit: 21, offset: 0 };
        let mut times: Vec<Duration> = Vec::new();
        let budget = Duration::from_secs_f64(a.seconds_per_query);
        let t0 = Instant::now();
        for i in 0..a.runs + 3 {
            let t = Instant::now();
            let hits = store.search(&query, &filter).await?;
            let snippets: usize = hits.iter().map(|h| confab_actors::store::snippet(&h.body, &query).len()).sum();
            std::hint::black_box(snippets);
            if i >= 3 {
                times.push(t.elapsed());
            }
            if t0.elapsed() > budget && times.len() >= 10 {
                break;
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let reachable = match p.room {
            Some(_) => p.matches,
            None => (p.matches as f64 * member).round() as usize,
        };
        println!(
            "  {:<20} {:<24} {:>9} {:>10} {:>6} {:>9.2} {:>9.2} {:>9.2}",
            p.name,
            p.query,
            p.matches,
            format!("~{reachable}"),
            times.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0))
        );
    }
    let index = store.search_index_bytes().await?;
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    match store.search_column_bytes().await? {
        None => println!("  index: FTS5 tables {:.1} MiB (dbstat)", mib(index)),
        Some(column) => println!(
            "  index: GIN {:.1} MiB (pg_relation_size of messages_search); the tsvector column {:.1} MiB in messages",
            mib(index),
            mib(column)
        ),
    }
    println!("  messages table: {:.1} MiB", mib(store.messages_bytes().await?));
    store.close().await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_unique_and_zipf_favours_the_first() {
        let words: std::collections::HashSet<String> = (0..super::VOCABULARY).map(super::word).collect();
        assert_eq!(words.len(), super::VOCABULARY);
        let z = super::Zipf::new(1000);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
        let firsts = (0..10_000).filter(|_| z.sample(&mut rng) == 0).count();
        assert!((1000..2000).contains(&firsts), "rank 1 has about 1/7.5 of the draws: {firsts}");
    }
}
