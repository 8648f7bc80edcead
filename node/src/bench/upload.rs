//! `confab bench upload`: N concurrent uploads of S MB each (`POST /api/uploads`, raw bodies
//! streamed from a 64 KiB block, never held whole), while C other users chat in one room.
//! Reports upload throughput, the server's resident memory before and at its peak during the
//! uploads (`--server-pid`, sampled every 50 ms), and the chat's delivery latency before and
//! during the uploads.
//!
//! The node must accept files of S MB (`--upload-max-file-bytes`) and N uploads a minute per
//! user (each upload is by a user of its own; chatters send at most `--chat-rate` a second).

use super::report::{Latency, new_histogram, r3, rss_kib};
use super::{ConnArgs, net, prepare, rest, run_id, users};
use anyhow::{Context, bail};
use clap::Args;
use fastwebsockets::OpCode;
use hdrhistogram::Histogram;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Args, Debug)]
pub(crate) struct UploadArgs {
    /// Uploads at once.
    #[arg(long, default_value_t = 20)]
    uploads: usize,
    /// Size of each upload, in MB (10^6 bytes).
    #[arg(long, default_value_t = 50.0)]
    size_mb: f64,
    /// Users chatting in one room meanwhile (0: none).
    #[arg(long, default_value_t = 10)]
    chatters: usize,
    /// Messages per second each chatter sends.
    #[arg(long, default_value_t = 2.0)]
    chat_rate: f64,
    /// Seconds of chat alone before the uploads start (the latency baseline).
    #[arg(long, default_value_t = 5.0)]
    baseline: f64,
    #[command(flatten)]
    pub(super) conn: ConnArgs,
}

/// The phase a chat message was sent in, written into its body.
const BASELINE: u8 = 0;
const UPLOADING: u8 = 1;
const AFTER: u8 = 2;

/// What one upload did.
struct Done {
    secs: f64,
    status: u16,
    body: String,
}

pub(crate) async fn run(a: &UploadArgs) -> anyhow::Result<bool> {
    if a.uploads == 0 || a.size_mb.is_nan() || a.size_mb <= 0.0 || a.chat_rate.is_nan() || a.chat_rate <= 0.0 {
        bail!("--uploads, --size-mb and --chat-rate must be positive");
    }
    let size = (a.size_mb * 1e6) as u64;
    let (nodes, _) = prepare(&a.conn, a.uploads + a.chatters)?;
    let run = run_id();
    let tokens = users(&nodes, &run, a.uploads + a.chatters.max(1), &a.conn.password).await?;
    let (uploaders, chatters) = tokens.split_at(a.uploads);
    let pid = a.conn.server_pid.map(|p| p.to_string());
    let clock = Instant::now();
    let phase = Arc::new(AtomicU8::new(BASELINE));

    // The chat: every chatter joined to one room, sending and timing everyone's messages.
    let room = rest::create_room(nodes[0], &chatters[0], &format!("bench-{run}-upload")).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut chat = Vec::new();
    for (i, token) in chatters.iter().enumerate().take(a.chatters) {
        let ws = net::ws_connect(nodes[i % nodes.len()], None, token)
            .await
            .map_err(|e| anyhow::anyhow!("chatter {i}: {}: {}", e.kind, e.detail))?;
        let (mut r, mut w) = net::split(ws, false);
        net::join(&mut r, &mut w, room).await.map_err(|e| anyhow::anyhow!("chatter {i} join: {}", e.detail))?;
        let (every, phase, stop) = (Duration::from_secs_f64(1.0 / a.chat_rate), phase.clone(), stop_rx.clone());
        let reader = tokio::spawn(read_chat(r, clock, stop.clone()));
        chat.push((tokio::spawn(send_chat(w, room, i, every, clock, phase, stop)), reader));
    }
    eprintln!("upload: {} chatters in room {room}; {} s of chat alone…", a.chatters, a.baseline);
    tokio::time::sleep(Duration::from_secs_f64(a.baseline)).await;

    // The uploads, all at once, with the server's RSS sampled meanwhile.
    let rss_before = pid.as_deref().and_then(rss_kib);
    phase.store(UPLOADING, Relaxed);
    eprintln!("upload: {} uploads of {} MB…", a.uploads, a.size_mb);
    let started = Instant::now();
    let (peak_tx, peak_rx) = tokio::sync::watch::channel(false);
    let sampler = pid.clone().map(|pid| {
        tokio::spawn(async move {
            let mut peak = 0;
            while !*peak_rx.borrow() {
                peak = rss_kib(&pid).unwrap_or(0).max(peak);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    });
    let tasks: Vec<_> = uploaders
        .iter()
        .enumerate()
        .map(|(i, token)| tokio::spawn(upload_one(nodes[i % nodes.len()], token.clone(), i, size)))
        .collect();
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.context("upload task")? {
            Ok(d) if d.status == 201 => done.push(d),
            Ok(d) => errors.push(format!("HTTP {}: {}", d.status, d.body.chars().take(200).collect::<String>())),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    phase.store(AFTER, Relaxed);
    let _ = peak_tx.send(true);
    let rss_peak = match sampler {
        Some(s) => Some(s.await.context("sampler")?),
        None => None,
    };
    let rss_after = pid.as_deref().and_then(rss_kib);

    // A second of chat after, then stop and gather the latencies.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let (mut base, mut during) = (new_histogram(), new_histogram());
    let (mut sent, mut received) = (0u64, 0u64);
    for (s, r) in chat {
        sent += s.await.context("chat sender")?;
        let timed = r.await.context("chat reader")?;
        base.add(&timed.baseline).context("histogram")?;
        during.add(&timed.uploading).context("histogram")?;
        received += timed.received;
    }
    let ok = errors.is_empty();
    let bytes = done.len() as u64 * size;
    let mut secs: Vec<f64> = done.iter().map(|d| d.secs).collect();
    secs.sort_by(f64::total_cmp);
    let median = secs.get(secs.len() / 2).copied().unwrap_or(0.0);
    let slowest = secs.last().copied().unwrap_or(0.0);
    let mbps = bytes as f64 / 1e6 / wall;
    let growth = match (rss_before, rss_peak) {
        (Some(b), Some(p)) => Some(p as i64 - b as i64),
        _ => None,
    };
    let (lat_base, lat_during) = (Latency::of(&base), Latency::of(&during));
    if a.conn.json {
        let v = json!({
            "kind": "upload", "uploads": a.uploads, "size_mb": a.size_mb, "ok": done.len(), "errors": errors,
            "wall_s": r3(wall), "throughput_mb_s": r3(mbps), "upload_s_median": r3(median), "upload_s_max": r3(slowest),
            "server_rss_kib_before": rss_before, "server_rss_kib_peak": rss_peak, "server_rss_kib_after": rss_after,
            "server_rss_growth_kib": growth,
            "chatters": a.chatters, "chat_sent": sent, "chat_received": received,
            "chat_latency_baseline": lat_base.json(), "chat_latency_during_uploads": lat_during.json(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("confab bench upload");
        let row = |k: &str, v: String| println!("  {k:<28} {v}");
        row("uploads", format!("{}/{} of {} MB stored in {wall:.1} s", done.len(), a.uploads, a.size_mb));
        for e in errors.iter().take(3) {
            row("  error", e.clone());
        }
        row("throughput", format!("{mbps:.1} MB/s (per upload: median {median:.1} s, slowest {slowest:.1} s)"));
        let kib = |x: Option<u64>| {
            x.map_or("n/a (give --server-pid)".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        };
        row("server VmRSS", format!("before {} · peak {} · after {}", kib(rss_before), kib(rss_peak), kib(rss_after)));
        if let Some(g) = growth {
            row("server RSS growth at peak", format!("{:.1} MiB", g as f64 / 1024.0));
        }
        row("chat", format!("{} chatters, {sent} sent, {received} deliveries timed", a.chatters));
        row("chat latency, chat alone", lat_base.line());
        row("chat latency, during uploads", lat_during.line());
    }
    Ok(ok)
}

/// Sends a message every `every` until told to stop; its body carries the phase and the send
/// time. Answers how many it sent.
async fn send_chat(
    mut w: net::WsWrite,
    room: i64,
    who: usize,
    every: Duration,
    clock: Instant,
    phase: Arc<AtomicU8>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return n,
        }
        let frame = format!(
            r#"{{"type":"send","room":{room},"cid":"c{who}-{n}","body":"bench|{}|{}"}}"#,
            phase.load(Relaxed),
            clock.elapsed().as_micros()
        );
        if net::send_text(&mut w, frame.into_bytes()).await.is_err() {
            return n;
        }
        n += 1;
    }
}

/// The delivery latencies one chatter saw, by the phase each message was sent in.
struct Timed {
    baseline: Histogram<u64>,
    uploading: Histogram<u64>,
    received: u64,
}

/// Times every chat message this chatter receives (its own included) until told to stop.
async fn read_chat(mut r: net::WsRead, clock: Instant, mut stop: tokio::sync::watch::Receiver<bool>) -> Timed {
    let mut t = Timed { baseline: new_histogram(), uploading: new_histogram(), received: 0 };
    loop {
        let frame = tokio::select! {
            f = net::read(&mut r) => f,
            _ = stop.changed() => return t,
        };
        let Ok(frame) = frame else { return t };
        if frame.opcode == OpCode::Close {
            return t;
        }
        let Some(at) = super::body::find(&frame.payload, b"\"body\":\"bench|") else { continue };
        let rest = &frame.payload[at + 14..];
        let mut fields = rest.split(|b| *b == b'|' || *b == b'"');
        let (Some(phase), Some(sent)) = (fields.next(), fields.next()) else { continue };
        let sent: u64 = match std::str::from_utf8(sent).ok().and_then(|s| s.parse().ok()) {
            Some(us) => us,
            None => continue,
        };
        let latency = (clock.elapsed().as_micros() as u64).saturating_sub(sent).max(1);
        let h = match phase {
            [b'0'] => &mut t.baseline,
            [b'1'] => &mut t.uploading,
            _ => continue,
        };
        let _ = h.record(latency);
        t.received += 1;
    }
}

/// One upload of `size` bytes of text on its own connection, streamed from one 64 KiB block.
async fn upload_one(addr: SocketAddr, token: String, i: usize, size: u64) -> anyhow::Result<Done> {
    const LINE: &[u8] = b"confab bench upload: the quick brown fox jumps over the lazy dog\n";
    let block: Vec<u8> = LINE.iter().copied().cycle().take(64 * 1024).collect();
    let started = Instant::now();
    let mut s = net::tcp(addr, None).await.with_context(|| format!("connecting to {addr}"))?;
    let head = format!(
        "POST /api/uploads?name=bench-{i}.txt HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut left = size;
    let mut write_error = None;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        if let Err(e) = s.write_all(&block[..n]).await {
            // Refused early (413, 429): the answer is still there to read.
            write_error = Some(e);
            break;
        }
        left -= n as u64;
    }
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut raw))
        .await
        .context("no answer within 120 s")??;
    let (status, body) = match net::parse_response(&raw) {
        Ok(r) => r,
        Err(e) => match write_error {
            Some(w) => bail!("sending the body: {w}"),
            None => return Err(e),
        },
    };
    Ok(Done { secs: started.elapsed().as_secs_f64(), status, body })
}
