//! Attachments on one node, with the local file system as blob storage: uploads and every
//! refusal (type read from the bytes, size per kind, quota, rate, a body cut off), each leaving
//! nothing in storage; images stripped of metadata (GPS EXIF) and turned upright; voice notes'
//! durations; messages carrying attachments live and in history, and the refusals of a send;
//! signed media URLs (expiry, forgery, moved to another file), ranges and headers; the sweeper.
//! Runs on SQLite, and on PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set.

use confab_tests::{Api, NodeOpts, TestNode, Ws, eventually, fetch, unique};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::AsyncWriteExt;

/// A node with generous upload limits unless `tune` changes them.
async fn node_with(tune: impl FnOnce(&mut confab::upload_args::UploadArgs)) -> TestNode {
    let mut opts = NodeOpts::default();
    opts.args.uploads.uploads_per_minute = Some(0);
    tune(&mut opts.args.uploads);
    TestNode::start(opts).await
}

/// `POST /api/uploads?name=…` with the raw bytes; `extra` is more of the query.
async fn upload(api: &Api, name: &str, bytes: Vec<u8>, extra: &str) -> (u16, Value) {
    let resp = api
        .http
        .post(format!("{}/api/uploads?name={name}{extra}", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .expect("upload request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The same as a multipart form with one `file` part.
async fn upload_form(api: &Api, name: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "confabtestboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = api
        .http
        .post(format!("{}/api/uploads", api.base))
        .bearer_auth(&api.token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("upload request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every file under the node's blob directory (temporary ones included).
fn stored_files(node: &TestNode) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, out) } else { out.push(path) }
        }
    }
    let mut out = Vec::new();
    walk(&node.db.dir.path().join("blobs"), &mut out);
    out
}

fn text(n: usize) -> Vec<u8> {
    "plain words\n".bytes().cycle().take(n).collect()
}

/// A PNG of `w`×`h` pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A JPEG of 40×20 pixels whose EXIF says: rotate 90° to show it (so it shows 20×40), and where
/// it was taken (GPS).
fn jpeg_with_gps() -> Vec<u8> {
    let img = image::RgbImage::from_fn(40, 20, |x, _| image::Rgb([(x * 6) as u8, 30, 200]));
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90))
        .unwrap();
    let mut tiff: Vec<u8> = b"II\x2a\x00".to_vec();
    tiff.extend(8u32.to_le_bytes());
    // IFD0: Orientation = 6, GPSInfo -> 38.
    tiff.extend(2u16.to_le_bytes());
    tiff.extend([0x12, 0x01, 3, 0]);
    tiff.extend(1u32.to_le_bytes());
    tiff.extend([6, 0, 0, 0]);
    tiff.extend([0x25, 0x88, 4, 0]);
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(38u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    // GPS IFD: latitude N 48° 51' 29.50".
    tiff.extend(2u16.to_le_bytes());
    tiff.extend([1, 0, 2, 0]);
    tiff.extend(2u32.to_le_bytes());
    tiff.extend(*b"N\0\0\0");
    tiff.extend([2, 0, 5, 0]);
    tiff.extend(3u32.to_le_bytes());
    tiff.extend(68u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    for (n, d) in [(48u32, 1u32), (51, 1), (2950, 100)] {
        tiff.extend(n.to_le_bytes());
        tiff.extend(d.to_le_bytes());
    }
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&plain[2..]);
    out
}

/// An Ogg Opus stream of `ms` milliseconds (pages and headers; no real audio).
fn ogg_opus(ms: u64) -> Vec<u8> {
    fn page(granule: u64, seq: u32, packet: &[u8]) -> Vec<u8> {
        let mut p = b"OggS\0\0".to_vec();
        p.extend(granule.to_le_bytes());
        p.extend(7u32.to_le_bytes());
        p.extend(seq.to_le_bytes());
        p.extend(0u32.to_le_bytes());
        p.extend([1, packet.len() as u8]);
        p.extend(packet);
        p
    }
    let mut head = b"OpusHead\x01\x01".to_vec();
    head.extend(312u16.to_le_bytes());
    head.extend(48_000u32.to_le_bytes());
    head.extend([0, 0, 0]);
    let mut out = page(0, 0, &head);
    out.extend(page(0, 1, b"OpusTags\0\0\0\0\0\0\0\0"));
    out.extend(page(312 + ms * 48, 2, &[0xfc; 40]));
    out
}

/// Sends and returns the ack or the error frame.
async fn send(ws: &mut Ws, room: i64, cid: &str, body: &str, attachments: &[&str]) -> Value {
    ws.send(json!({"type": "send", "room": room, "cid": cid, "body": body, "attachments": attachments})).await;
    ws.recv_where("the answer", |f| f["type"] == "ack" && f["cid"] == cid || f["type"] == "error" && f["ref"] == cid)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_are_read_from_the_bytes_and_refusals_leave_nothing() {
    let node = node_with(|u| {
        u.upload_max_file_bytes = Some(1000);
        u.upload_max_image_bytes = Some(200_000);
    })
    .await;
    let alice = node.user(&unique("alice")).await;

    // A program named like a picture, sent as one: refused, nothing kept.
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
    elf.resize(4096, 0x90);
    let (status, body) = upload(&alice, "photo.png", elf.clone(), "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_type")), "{body}");
    let (status, _) = upload_form(&alice, "photo.png", &elf).await;
    assert_eq!(status, 415);

    // The size limit of files, to the byte.
    let (status, body) = upload(&alice, "notes.txt", text(1001), "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
    assert_eq!(body["error"]["limit"].as_u64(), Some(1000), "the refusal names its limit: {body}");
    assert!(stored_files(&node).is_empty(), "refused uploads leave nothing: {:?}", stored_files(&node));
    let (status, body) = upload(&alice, "notes.txt", text(1000), "").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["size"].as_u64(), body["mime"].as_str(), body["kind"].as_str(), body["name"].as_str()),
        (Some(1000), Some("text/plain; charset=utf-8"), Some("file"), Some("notes.txt"))
    );
    assert_eq!(body["id"].as_str().map(str::len), Some(32));

    // Images have their own limit: a PNG over the file limit is fine.
    let (status, body) = upload_form(&alice, "../../secret/pic.png", &png(64, 48)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["kind"].as_str(), body["width"].as_u64(), body["height"].as_u64()),
        (Some("image"), Some(64), Some(48))
    );
    assert_eq!(body["name"], "pic.png", "only the last part of a path is kept");
    // An image that does not decode is refused, and not kept.
    let before = stored_files(&node).len();
    let mut broken = png(64, 48);
    broken.truncate(200);
    let (status, body) = upload(&alice, "broken.png", broken, "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_type")), "{body}");
    assert_eq!(stored_files(&node).len(), before);

    // A voice note must be a recording; its duration is read from the container.
    let (status, _) = upload(&alice, "v.ogg", png(8, 8), "&kind=voice").await;
    assert_eq!(status, 415);
    let (status, body) = upload(&alice, "v.ogg", ogg_opus(2500), "&kind=voice&duration_ms=9").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["kind"].as_str(), body["duration_ms"].as_u64()), (Some("voice"), Some(2500)));
    // A container the node does not read: the client's duration, clamped.
    let mut mp3 = b"ID3\x03\0\0\0\0\0\0".to_vec();
    mp3.resize(600, 0);
    let (status, body) = upload(&alice, "v.mp3", mp3, "&kind=voice&duration_ms=99999999999").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["duration_ms"].as_u64(), Some(3_600_000));
    let (status, _) = upload(&alice, "x", text(10), "&kind=video").await;
    assert_eq!(status, 400);
    let anonymous = reqwest::Client::new().post(format!("{}/api/uploads?name=a", node.base)).body("hi").send().await;
    assert_eq!(anonymous.unwrap().status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_rate_refuse_with_429() {
    let node = node_with(|u| u.upload_quota_bytes = Some(2500)).await;
    let alice = node.user(&unique("alice")).await;
    for _ in 0..2 {
        let (status, body) = upload(&alice, "a.txt", text(1000), "").await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = upload(&alice, "a.txt", text(1000), "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{body}");
    assert_eq!(body["error"]["limit"].as_u64(), Some(2500), "{body}");
    assert_eq!(stored_files(&node).len(), 2, "the refused one is not kept");
    // Another user has their own quota.
    let bob = node.user(&unique("bob")).await;
    assert_eq!(upload(&bob, "b.txt", text(1000), "").await.0, 201);

    let node = node_with(|u| u.uploads_per_minute = Some(2)).await;
    let carol = node.user(&unique("carol")).await;
    for _ in 0..2 {
        assert_eq!(upload(&carol, "c.txt", text(10), "").await.0, 201);
    }
    let (status, body) = upload(&carol, "c.txt", text(10), "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(stored_files(&node).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_midway_leaves_nothing() {
    let node = node_with(|u| u.upload_max_file_bytes = Some(1 << 20)).await;
    let alice = node.user(&unique("alice")).await;
    let refused_before = node.system().metrics().uploads_refused.load(Relaxed);
    let addr = node.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/uploads?name=big.txt HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 1000000\r\n\r\n",
        alice.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // More than two of the local store's 256 KiB parts, so some of it is stored before the end.
    tcp.write_all(&text(700_000)).await.unwrap();
    tcp.flush().await.unwrap();
    // Part of it reached storage before the client went away.
    eventually("the upload to start storing", || async { (!stored_files(&node).is_empty()).then_some(()) }).await;
    drop(tcp);
    let metrics = node.system().metrics().clone();
    eventually("the upload to be refused", || async {
        (metrics.uploads_refused.load(Relaxed) > refused_before).then_some(())
    })
    .await;
    eventually("storage to be empty", || async { stored_files(&node).is_empty().then_some(()) }).await;
    // And nothing is recorded: a message cannot name it.
    let (_, body) = upload(&alice, "small.txt", text(10), "").await;
    assert!(body["id"].is_string());
    assert_eq!(stored_files(&node).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_lose_their_metadata_and_stand_upright() {
    let node = node_with(|_| {}).await;
    let alice = node.user(&unique("alice")).await;
    let original = jpeg_with_gps();
    assert!(original.windows(4).any(|w| w == b"Exif"), "the test image has EXIF");
    let (status, body) = upload(&alice, "holiday.jpg", original, "").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["width"].as_u64(), body["height"].as_u64()), (Some(20), Some(40)), "turned by its orientation");
    let id = body["id"].as_str().unwrap().to_owned();

    let room = alice.create_room(&unique("pics"), "public").await;
    let mut ws = alice.ws(&node.ws_url).await;
    ws.join(room, None).await;
    let ack = send(&mut ws, room, "p1", "", &[&id]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let frame = ws.recv_where("the message", |f| f["type"] == "message" && f["seq"] == ack["seq"]).await;
    let a = &frame["attachments"][0];
    let (status, headers, bytes) = fetch(&node.base, a["url"].as_str().unwrap(), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert!(!bytes.windows(4).any(|w| w == b"Exif"), "no EXIF left");
    assert!(!bytes.windows(2).any(|w| w == [0xff, 0xe1]), "no APP1 segment left");
    let served = image::load_from_memory(&bytes).unwrap();
    assert_eq!((served.width(), served.height()), (20, 40));
    let (status, headers, thumb) = fetch(&node.base, a["thumb_url"].as_str().unwrap(), None).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, "image/jpeg"));
    assert!(image::load_from_memory(&thumb).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_attachments_live_and_in_history() {
    let node = node_with(|_| {}).await;
    let (alice, bob, carol) =
        (node.user(&unique("alice")).await, node.user(&unique("bob")).await, node.user(&unique("carol")).await);
    let room = alice.create_room(&unique("files"), "private").await;
    let (status, _) = alice.post(&format!("/api/rooms/{room}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204);
    let (_, pic) = upload(&alice, "pic.png", png(30, 10), "").await;
    let (_, doc) = upload_form(&alice, "notes.txt", &text(300)).await;
    let (pic_id, doc_id) = (pic["id"].as_str().unwrap().to_owned(), doc["id"].as_str().unwrap().to_owned());

    let mut wa = alice.ws(&node.ws_url).await;
    wa.join(room, None).await;
    let mut wb = bob.ws(&node.ws_url).await;
    wb.join(room, None).await;
    let ack = send(&mut wa, room, "m1", "two files", &[&pic_id, &doc_id]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let live = wb.recv_where("the message", |f| f["type"] == "message" && f["seq"] == ack["seq"]).await;
    let list = live["attachments"].as_array().expect("attachments");
    assert_eq!(list.len(), 2, "{live}");
    assert_eq!(
        (list[0]["id"].as_str(), list[0]["kind"].as_str(), list[0]["width"].as_u64(), list[0]["height"].as_u64()),
        (Some(pic_id.as_str()), Some("image"), Some(30), Some(10))
    );
    assert!(list[0]["thumb_url"].as_str().unwrap().starts_with(&format!("/media/{pic_id}/thumb?exp=")));
    assert_eq!((list[1]["name"].as_str(), list[1]["size"].as_u64()), (Some("notes.txt"), Some(300)));
    assert!(list[1].get("thumb_url").is_none() && list[1].get("width").is_none(), "{}", list[1]);
    let (status, headers, bytes) = fetch(&node.base, list[1]["url"].as_str().unwrap(), None).await;
    assert_eq!((status, bytes.len()), (200, 300));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert!(headers["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
    assert!(headers["cache-control"].to_str().unwrap().starts_with("private, max-age="));

    // A message with no text but a file; a plain message has no `attachments`.
    let (_, more) = upload(&alice, "more.txt", text(5), "").await;
    let ack2 = send(&mut wa, room, "m2", "", &[more["id"].as_str().unwrap()]).await;
    assert_eq!(ack2["type"], "ack", "{ack2}");
    let ack3 = send(&mut wa, room, "m3", "just words", &[]).await;
    let plain = wb.recv_where("the plain message", |f| f["type"] == "message" && f["seq"] == ack3["seq"]).await;
    assert!(plain.get("attachments").is_none(), "{plain}");

    // History lists them with URLs signed now; a replay too.
    let (_, history) = bob.get(&format!("/api/rooms/{room}/messages")).await;
    let first = history["messages"].as_array().unwrap().iter().find(|m| m["seq"] == ack["seq"]).cloned().unwrap();
    assert_eq!(first["attachments"].as_array().map(Vec::len), Some(2), "{first}");
    assert_eq!(fetch(&node.base, first["attachments"][0]["url"].as_str().unwrap(), None).await.0, 200);
    let mut late = bob.ws(&node.ws_url).await;
    late.join(room, Some(0)).await;
    let replayed = late.recv_where("the replay", |f| f["type"] == "message" && f["seq"] == ack["seq"]).await;
    assert_eq!(replayed["attachments"].as_array().map(Vec::len), Some(2));

    // A fresh URL for a member; none for someone outside the private room.
    let (status, fresh) = bob.get(&format!("/api/rooms/{room}/attachments/{pic_id}")).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fetch(&node.base, fresh["url"].as_str().unwrap(), None).await.0, 200);
    let (status, body) = carol.get(&format!("/api/rooms/{room}/attachments/{pic_id}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_member")), "{body}");
    let other = alice.create_room(&unique("other"), "public").await;
    let (status, _) = alice.get(&format!("/api/rooms/{other}/attachments/{pic_id}")).await;
    assert_eq!(status, 404, "not a file of that room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_may_name_only_its_senders_unused_uploads() {
    let node = node_with(|_| {}).await;
    let (alice, bob) = (node.user(&unique("alice")).await, node.user(&unique("bob")).await);
    let room = alice.create_room(&unique("r"), "public").await;
    let (_, up) = upload(&alice, "a.txt", text(20), "").await;
    let id = up["id"].as_str().unwrap().to_owned();
    let mut wa = alice.ws(&node.ws_url).await;
    wa.join(room, None).await;
    let mut wb = bob.ws(&node.ws_url).await;
    wb.join(room, None).await;

    let refused = send(&mut wb, room, "b1", "mine now", &[&id]).await;
    assert_eq!(refused["code"], "attachment_not_found", "someone else's upload: {refused}");
    let refused = send(&mut wa, room, "a0", "x", &["0123456789abcdef0123456789abcdef"]).await;
    assert_eq!(refused["code"], "attachment_not_found", "{refused}");
    let refused = send(&mut wa, room, "a00", "x", &["../../etc/passwd"]).await;
    assert_eq!(refused["code"], "attachment_not_found", "{refused}");
    let eleven: Vec<String> = (0..11).map(|i| format!("{i:032x}")).collect();
    let names: Vec<&str> = eleven.iter().map(String::as_str).collect();
    let refused = send(&mut wa, room, "a000", "x", &names).await;
    assert_eq!(refused["code"], "too_many_attachments", "{refused}");
    let refused = send(&mut wa, room, "a0000", "", &[]).await;
    assert_eq!(refused["code"], "empty_body", "{refused}");

    let ack = send(&mut wa, room, "a1", "here", &[&id]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // The same cid again: its original ack, not a refusal.
    let again = send(&mut wa, room, "a1", "here", &[&id]).await;
    assert_eq!((again["type"].as_str(), again["seq"].as_u64()), (Some("ack"), ack["seq"].as_u64()), "{again}");
    let refused = send(&mut wa, room, "a2", "again", &[&id]).await;
    assert_eq!(refused["code"], "attachment_used", "{refused}");
    // An edit carries no files.
    wa.send(json!({"type": "edit", "room": room, "seq": ack["seq"], "body": "x", "attachments": [id]})).await;
    wa.expect_error("bad_frame").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_urls_expire_and_cannot_be_forged_or_moved() {
    let node = node_with(|u| u.media_url_ttl_secs = Some(3)).await;
    let alice = node.user(&unique("alice")).await;
    let room = alice.create_room(&unique("r"), "public").await;
    let (_, a) = upload(&alice, "a.png", png(12, 12), "").await;
    let (_, b) = upload(&alice, "b.txt", text(100), "").await;
    let (a_id, b_id) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    let mut ws = alice.ws(&node.ws_url).await;
    ws.join(room, None).await;
    let ack = send(&mut ws, room, "m", "", &[&a_id, &b_id]).await;
    let frame = ws.recv_where("the message", |f| f["type"] == "message" && f["seq"] == ack["seq"]).await;
    let a_url = frame["attachments"][0]["url"].as_str().unwrap().to_owned();
    let a_thumb = frame["attachments"][0]["thumb_url"].as_str().unwrap().to_owned();
    let b_url = frame["attachments"][1]["url"].as_str().unwrap().to_owned();
    assert_eq!(fetch(&node.base, &a_url, None).await.0, 200);

    let query = a_url.split_once('?').unwrap().1.to_owned();
    let sig = query.split("sig=").nth(1).unwrap().to_owned();
    let exp: i64 = query.split('&').next().unwrap()[4..].parse().unwrap();
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let forged = [
        format!("/media/{b_id}?{query}"),                       // moved to another file
        format!("/media/{a_id}/thumb?{query}"),                 // a file's signature on its thumbnail
        format!("/media/{a_id}?exp={}&sig={sig}", exp + 3600),  // a longer life
        format!("/media/{a_id}?exp={exp}&sig={flipped}"),       // tampered
        format!("/media/{a_id}?exp={exp}"),                     // unsigned
        format!("/media/{}?{query}", "../../../../etc/passwd"), // not an id
    ];
    for path in forged {
        let resp = reqwest::get(format!("{}{path}", node.base)).await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status == 403 || status == 404, "{path}: {status}");
        if status == 403 {
            assert_eq!(body["error"]["code"], "forbidden", "{path}");
        }
    }
    assert_eq!(fetch(&node.base, &a_thumb, None).await.0, 200);
    assert_eq!(fetch(&node.base, &b_url, None).await.0, 200);

    // Ranges, for seeking.
    let (status, headers, bytes) = fetch(&node.base, &b_url, Some("bytes=10-19")).await;
    assert_eq!((status, bytes.as_slice()), (206, &text(100)[10..20]));
    assert_eq!(headers["content-range"], "bytes 10-19/100");
    assert_eq!(headers["accept-ranges"], "bytes");
    let (status, _, bytes) = fetch(&node.base, &b_url, Some("bytes=-7")).await;
    assert_eq!((status, bytes.as_slice()), (206, &text(100)[93..]));
    let (status, headers, _) = fetch(&node.base, &b_url, Some("bytes=100-")).await;
    assert_eq!((status, headers["content-range"].to_str().unwrap()), (416, "bytes */100"));

    // Expired: refused with 403, and a fresh URL works again.
    eventually("the URL to expire", || async { (fetch(&node.base, &a_url, None).await.0 == 403).then_some(()) }).await;
    let (_, fresh) = alice.get(&format!("/api/rooms/{room}/attachments/{a_id}")).await;
    assert_eq!(fetch(&node.base, fresh["url"].as_str().unwrap(), None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_deletes_what_nothing_references_and_nothing_else() {
    let node = node_with(|u| {
        u.upload_orphan_ttl_secs = Some(3);
        u.upload_sweep_secs = Some(1);
    })
    .await;
    let alice = node.user(&unique("alice")).await;
    let room = alice.create_room(&unique("r"), "public").await;
    let doomed = alice.create_room(&unique("doomed"), "public").await;
    let mut ws = alice.ws(&node.ws_url).await;
    ws.join(room, None).await;
    ws.join(doomed, None).await;
    let file_of = |id: &str| node.db.dir.path().join("blobs").join("u").join(id);
    let mut ids = Vec::new();
    for name in ["kept.txt", "deleted.txt", "in-deleted-room.txt", "orphan.txt"] {
        let (status, up) = upload(&alice, name, text(50), "").await;
        assert_eq!(status, 201, "{up}");
        ids.push(up["id"].as_str().unwrap().to_owned());
    }
    let (kept, deleted, in_room, orphan) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    assert_eq!(send(&mut ws, room, "k", "keep", &[kept]).await["type"], "ack");
    let gone = send(&mut ws, room, "d", "delete me", &[deleted]).await;
    assert_eq!(gone["type"], "ack");
    assert_eq!(send(&mut ws, doomed, "r", "room goes", &[in_room]).await["type"], "ack");
    for id in &ids {
        assert!(file_of(id).exists(), "{id} is stored");
    }

    // The orphan goes once its time is up; the others stay.
    eventually("the orphan to be deleted", || async { (!file_of(orphan).exists()).then_some(()) }).await;
    let metrics = node.system().metrics().clone();
    let runs = metrics.sweeper_runs.load(Relaxed);
    eventually("two more sweeps", || async { (metrics.sweeper_runs.load(Relaxed) >= runs + 2).then_some(()) }).await;
    for id in [kept, deleted, in_room] {
        assert!(file_of(id).exists(), "{id} is referenced and kept");
    }

    // Deleting the message, then the room, deletes their files.
    ws.send(json!({"type": "delete", "room": room, "seq": gone["seq"], "cid": "del"})).await;
    ws.recv_where("the delete", |f| f["type"] == "deleted").await;
    eventually("the deleted message's file to go", || async { (!file_of(deleted).exists()).then_some(()) }).await;
    let (status, _) = alice.call(reqwest::Method::DELETE, &format!("/api/rooms/{doomed}"), None).await;
    assert!(status == 200 || status == 204, "{status}");
    eventually("the deleted room's file to go", || async { (!file_of(in_room).exists()).then_some(()) }).await;
    let runs = metrics.sweeper_runs.load(Relaxed);
    eventually("two more sweeps", || async { (metrics.sweeper_runs.load(Relaxed) >= runs + 2).then_some(()) }).await;
    assert!(file_of(kept).exists(), "a referenced file is never deleted");
    assert!(metrics.sweeper_files_deleted.load(Relaxed) >= 3);
    let body = reqwest::get(format!("{}/metrics", node.base)).await.unwrap().text().await.unwrap();
    assert!(body.contains("confab_sweeper_files_deleted_total"), "in /metrics");
    // An expired orphan can no longer be attached.
    let refused = send(&mut ws, room, "late", "x", &[orphan]).await;
    assert_eq!(refused["code"], "attachment_not_found");
}
