//! Attachments across a cluster: two node processes on PostgreSQL sharing a real S3 store
//! (Garage, `.ci/garage.sh`). A file uploaded through one node is served by the other through the
//! signed URL the message carries (whole, by range, and an image's thumbnail), and the URL is
//! good on every node. The objects are in the shared bucket under the sandbox's prefix; the test
//! removes them at the end.

use confab_tests::cluster::Sandbox;
use confab_tests::{Api, Ws, fetch, unique};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

async fn upload(api: &Api, name: &str, bytes: Vec<u8>) -> Value {
    let resp = api
        .http
        .post(format!("{}/api/uploads?name={name}", api.base))
        .bearer_auth(&api.token)
        .body(bytes)
        .send()
        .await
        .expect("upload request");
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "upload {name}: {v}");
    v
}

async fn send(ws: &mut Ws, room: i64, cid: &str, attachments: &[&str]) -> Value {
    ws.send(json!({"type": "send", "room": room, "cid": cid, "body": "files", "attachments": attachments})).await;
    ws.recv_where("the answer", |f| f["type"] == "ack" && f["cid"] == cid || f["type"] == "error" && f["ref"] == cid)
        .await
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 120]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_through_one_node_is_served_by_the_other() {
    let sb = Sandbox::start(BIN, 2).await;
    let alice = Api::register(&sb.bases[0], &unique("alice")).await;
    let bob = Api::register(&sb.bases[1], &unique("bob")).await;
    let room = alice.create_room(&unique("files"), "private").await;
    let (status, _) = alice.post(&format!("/api/rooms/{room}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204);

    // Through node 0: a text file of several S3 parts, and an image (stored with a thumbnail).
    let doc: Vec<u8> = "a line of the notes\n".bytes().cycle().take(11 * 1024 * 1024 + 7).collect();
    let doc_up = upload(&alice, "notes.txt", doc.clone()).await;
    assert_eq!(doc_up["size"].as_u64(), Some(doc.len() as u64));
    let pic_up = upload(&alice, "pic.png", png(64, 48)).await;
    let (doc_id, pic_id) = (doc_up["id"].as_str().unwrap(), pic_up["id"].as_str().unwrap());
    let stored = sb.s3.list(&sb.s3_prefix).await;
    assert!(stored.len() >= 3, "the file, the image and its thumbnail are in the shared bucket: {stored:?}");
    assert!(stored.iter().all(|k| !k.contains("notes")), "names never come from the file name: {stored:?}");

    // Bob, on node 1, gets the message and reads the files from node 1.
    let mut wb = bob.ws(&sb.ws_urls[1]).await;
    wb.join(room, None).await;
    let mut wa = alice.ws(&sb.ws_urls[0]).await;
    wa.join(room, None).await;
    let ack = send(&mut wa, room, "m1", &[doc_id, pic_id]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let live = wb.recv_where("the message", |f| f["type"] == "message" && f["seq"] == ack["seq"]).await;
    let list = live["attachments"].as_array().expect("attachments");
    let (doc_url, pic_url) = (list[0]["url"].as_str().unwrap(), list[1]["url"].as_str().unwrap());
    let thumb_url = list[1]["thumb_url"].as_str().expect("a thumbnail");

    let (status, _, bytes) = fetch(&sb.bases[1], doc_url, None).await;
    assert_eq!(status, 200);
    assert!(bytes == doc, "node 1 serves the bytes node 0 stored ({} of {} bytes)", bytes.len(), doc.len());
    let (start, end) = (5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 9);
    let (status, headers, part) = fetch(&sb.bases[1], doc_url, Some(&format!("bytes={start}-{end}"))).await;
    assert_eq!(status, 206);
    assert_eq!(headers["content-range"], format!("bytes {start}-{end}/{}", doc.len()).as_str());
    assert!(part == doc[start..=end], "a range across a part border");
    for (url, what) in [(pic_url, "image"), (thumb_url, "thumbnail")] {
        let (status, headers, bytes) = fetch(&sb.bases[1], url, None).await;
        assert_eq!(status, 200, "{what}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("image/"), "{what}: {headers:?}");
        assert!(!bytes.is_empty());
    }
    // The same signed URL is good on the node that stored the file too; a tampered one nowhere.
    assert_eq!(fetch(&sb.bases[0], doc_url, Some("bytes=0-9")).await.2, &doc[..10]);
    let forged = doc_url.replace("sig=", "sig=0");
    for base in &sb.bases {
        assert_eq!(fetch(base, &forged, None).await.0, 403);
    }

    sb.s3.remove_all(&sb.s3_prefix).await;
}
