//! The browser app's attachments in real headless Chromium (as `browser.rs`), against a real
//! in-process node: an image and a text file chosen in the file picker reach another user's open
//! app as a thumbnail (sized before it loads, lazy, opening full size) and a file card; a voice
//! note recorded from Chromium's fake microphone plays in the other user's app with its length
//! shown; a program renamed `.png` is refused with a clear message, and an upload cancelled
//! midway (the network throttled) leaves nothing behind. Without chromedriver these tests fail.

use confab::ServeArgs;
use confab::upload_args::UploadArgs;
use confab_tests::browser::{Browser, Driver, FAKE_MEDIA};
use confab_tests::chat_page::{open_room, send, sign_up, wait_message};
use confab_tests::{NodeOpts, TestNode, unique};
use serde_json::json;
use std::path::{Path, PathBuf};

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);
/// WebDriver's Escape key.
const ESCAPE: &str = "\u{E00C}";

/// A PNG of `width`×`height` (a colour gradient), written without an image library: stored
/// (uncompressed) deflate blocks.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::with_capacity((height * (width * 3 + 1)) as usize);
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend([(x * 255 / width) as u8, (y * 255 / height) as u8, 160]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(&data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    out
}

/// A WAV of `ms` milliseconds of a 440 Hz tone (8 kHz, 16-bit mono).
fn wav(ms: u32) -> Vec<u8> {
    let samples: Vec<i16> =
        (0..8 * ms).map(|i| ((f64::from(i) * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16).collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = b"RIFF".to_vec();
    out.extend((36 + data_len).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(1u16.to_le_bytes()); // PCM
    out.extend(1u16.to_le_bytes()); // mono
    out.extend(8000u32.to_le_bytes());
    out.extend(16_000u32.to_le_bytes()); // bytes a second
    out.extend(2u16.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(b"data");
    out.extend(data_len.to_le_bytes());
    for s in samples {
        out.extend(s.to_le_bytes());
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Writes `bytes` as `name` in `dir` and returns its path.
fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a test file");
    path
}

/// Two users in `general`, each in their own browser (with `args`), on one node.
async fn two_users(node: &TestNode, driver: &Driver, size: (u32, u32), args: &[&str]) -> (Browser, Browser) {
    let a = driver.browser_with(size.0, size.1, args).await;
    let b = driver.browser_with(size.0, size.1, args).await;
    sign_up(&a, &node.base, &unique("alice")).await;
    sign_up(&b, &node.base, &unique("bob")).await;
    open_room(&a, "general").await;
    open_room(&b, "general").await;
    (a, b)
}

/// Switches `b` to a phone's screen, once the room list has become a closed drawer.
async fn to_phone(b: &Browser) {
    b.emulate_phone(PHONE.0, PHONE.1).await;
    b.wait_for(
        "the room list to become a closed drawer",
        "return getComputedStyle(document.querySelector('.sidebar')).visibility === 'hidden';",
        json!([]),
    )
    .await;
}

/// Waits until the tray above the composer holds `n` files, all uploaded.
async fn wait_uploaded(b: &Browser, n: usize) {
    b.wait_for(
        &format!("{n} files uploaded in the tray"),
        "const items = [...document.querySelectorAll('#uploads .upload')]; \
         const failed = items.find((i) => i.classList.contains('failed')); \
         if (failed) return 'failed: ' + failed.textContent; \
         return items.length === arguments[0] && items.every((i) => i.classList.contains('ready'));",
        json!([n]),
    )
    .await;
    let failed =
        b.exec("return document.querySelector('#uploads .upload.failed')?.textContent ?? null;", json!([])).await;
    assert!(failed.is_null(), "an upload failed: {failed}");
}

/// The attachments of the shown message whose body is `body`: `{kind, ...}` per attachment.
const ATTACHMENTS: &str = "const li = [...document.querySelectorAll('#messages .msg[data-seq]')].find((x) => \
       x.querySelector('.body').textContent === arguments[0]); \
     if (!li) return null; \
     return [...li.querySelectorAll('.attachment')].map((a) => { \
       const img = a.querySelector('img'), link = a.querySelector('.att-download'), audio = a.querySelector('audio'); \
       return { cls: a.className, id: a.dataset.attachment, \
         img: img && { src: img.getAttribute('src'), w: img.getAttribute('width'), h: img.getAttribute('height'), \
           loading: img.loading, loaded: img.complete && img.naturalWidth > 0, natural: [img.naturalWidth, img.naturalHeight], \
           box: [Math.round(img.getBoundingClientRect().width), Math.round(img.getBoundingClientRect().height)] }, \
         name: a.querySelector('.att-file-name')?.textContent ?? null, size: a.querySelector('.att-file-size')?.textContent ?? null, \
         href: link?.getAttribute('href') ?? null, download: link?.getAttribute('download') ?? null, \
         time: a.querySelector('.play-time')?.textContent ?? null, audio: audio && { t: audio.currentTime, ended: audio.ended, paused: audio.paused } }; });";

/// Waits until the shown message whose body is `body` has attachments that pass `check` (a JS
/// expression over `got`, the list `ATTACHMENTS` gives), and returns them.
async fn wait_attachments(b: &Browser, body: &str, what: &str, check: &str) -> serde_json::Value {
    b.wait_for(
        what,
        &format!("const got = (() => {{ {ATTACHMENTS} }})(); return got && ({check}) ? got : null;"),
        json!([body]),
    )
    .await
}

/// Ends a test's two browsers, their consoles clean but for messages containing one of `allowed`.
async fn finish(a: Browser, b: Browser, allowed: &[&str]) {
    a.assert_clean_console(allowed).await;
    b.assert_clean_console(allowed).await;
    a.quit().await;
    b.quit().await;
}

/// Alice picks a 640×480 PNG and a text file, types a line and sends: Bob's open app shows the
/// message with the image's thumbnail (its box 320×240 before it loads, lazy, from the signed
/// thumbnail URL) and a card for the text file (name, size, a download link that serves it);
/// the thumbnail opens the full-size image, which Escape closes. The same history in a phone's
/// width keeps the image within the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_and_a_file_reach_the_other_user_as_a_thumbnail_and_a_card() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (a, b) = two_users(&node, &driver, DESKTOP, &[]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let image = file(dir.path(), "sunset.png", &png(640, 480));
    let text = file(dir.path(), "notes.txt", "shopping list\n- bread\n- tea\n".repeat(40).as_bytes());

    a.choose_files("#file-input", &[&image, &text]).await;
    wait_uploaded(&a, 2).await;
    a.screenshot("files-tray-desktop").await;
    send(&a, "the view from here").await;

    let on_b = wait_attachments(
        &b,
        "the view from here",
        "the thumbnail and the card on Bob's screen",
        "got.length === 2 && got[0].img?.loaded",
    )
    .await;
    let (img, card) = (&on_b[0]["img"], &on_b[1]);
    assert!(on_b[0]["cls"].as_str().unwrap().contains("att-image"), "{on_b}");
    assert_eq!((img["w"].as_str(), img["h"].as_str()), (Some("320"), Some("240")), "sized from the attachment: {img}");
    assert_eq!(img["box"], json!([320, 240]), "shown at that size: {img}");
    assert_eq!(img["loading"], "lazy");
    let thumb = img["src"].as_str().unwrap();
    assert!(
        thumb.starts_with("/media/") && thumb.contains("/thumb?") && thumb.contains("sig="),
        "a signed thumbnail URL: {thumb}"
    );
    assert!(img["natural"][0].as_u64().unwrap() <= 640, "a thumbnail, not more than the image: {img}");
    assert_eq!(card["name"], "notes.txt");
    assert_eq!(card["download"], "notes.txt");
    assert!(card["size"].as_str().unwrap().contains("KB"), "the size in words: {card}");
    let href = card["href"].as_str().unwrap();
    assert!(href.starts_with("/media/") && href.contains("sig="), "a signed download link: {href}");
    // The link serves the file (as Bob's browser would fetch it).
    let served = b
        .wait_for(
            "the download link to answer",
            "if (!window.__fetching) { window.__fetching = true; fetch(arguments[0]).then(async (r) => { \
               window.__served = { status: r.status, disposition: r.headers.get('content-disposition'), text: await r.text() }; }); } \
             return window.__served ?? null;",
            json!([href]),
        )
        .await;
    assert_eq!(served["status"], 200, "{served}");
    assert!(served["text"].as_str().unwrap().starts_with("shopping list"), "{served}");
    assert!(served["disposition"].as_str().unwrap_or_default().starts_with("attachment"), "{served}");
    b.screenshot("files-received-desktop").await;

    // Full size, then Escape.
    b.click("#messages .att-image").await;
    let full = b
        .wait_for(
            "the full-size image",
            "const d = document.querySelector('#media-dialog'), i = document.querySelector('#media-img'); \
             return d.open && i.complete && i.naturalWidth > 0 ? { w: i.naturalWidth, h: i.naturalHeight, name: document.querySelector('#media-name').textContent } : null;",
            json!([]),
        )
        .await;
    assert_eq!(full, json!({"w": 640, "h": 480, "name": "sunset.png"}));
    b.screenshot("files-full-size-desktop").await;
    b.press(ESCAPE).await;
    b.wait_for("the full-size view to close", "return !document.querySelector('#media-dialog').open;", json!([])).await;

    // An image pasted into the composer and a file dropped on the conversation go along too.
    a.exec(
        "const c = document.createElement('canvas'); c.width = 64; c.height = 48; \
         const g = c.getContext('2d'); g.fillStyle = '#3b5bdb'; g.fillRect(0, 0, 64, 48); \
         c.toBlob((blob) => { const dt = new DataTransfer(); dt.items.add(new File([blob], 'image.png', { type: 'image/png' })); \
           document.querySelector('#composer').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true })); }, 'image/png');",
        json!([]),
    )
    .await;
    a.exec(
        "const dt = new DataTransfer(); dt.items.add(new File(['dropped here'], 'dropped.txt', { type: 'text/plain' })); \
         window.__drop = dt; \
         document.querySelector('#scroller').dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));",
        json!([]),
    )
    .await;
    a.wait_visible("#drop-zone").await;
    a.screenshot("files-drop-zone-desktop").await;
    a.exec(
        "document.querySelector('#scroller').dispatchEvent(new DragEvent('drop', { dataTransfer: window.__drop, bubbles: true, cancelable: true }));",
        json!([]),
    )
    .await;
    a.wait_for("the drop zone to go", "return document.querySelector('#drop-zone').hidden;", json!([])).await;
    wait_uploaded(&a, 2).await;
    send(&a, "pasted and dropped").await;
    let both = wait_attachments(
        &b,
        "pasted and dropped",
        "the pasted image and the dropped file",
        "got.length === 2 && got[0].img?.loaded",
    )
    .await;
    assert_eq!((both[0]["img"]["w"].as_str(), both[0]["img"]["h"].as_str()), (Some("64"), Some("48")), "{both}");
    assert_eq!(both[1]["name"], "dropped.txt", "{both}");

    // On a phone: the history's image fits the screen.
    b.emulate_phone(PHONE.0, PHONE.1).await;
    b.refresh().await;
    open_room(&b, "general").await;
    let on_phone = wait_attachments(&b, "the view from here", "the image on a phone", "got[0].img?.loaded").await;
    let w = on_phone[0]["img"]["box"][0].as_u64().unwrap();
    let h = on_phone[0]["img"]["box"][1].as_u64().unwrap();
    assert!(
        w <= u64::from(PHONE.0) && (w * 3).abs_diff(h * 4) <= 8,
        "kept within the screen at its aspect ratio: {on_phone}"
    );
    b.screenshot("files-received-phone").await;
    b.color_scheme("dark").await;
    b.screenshot("files-received-phone-dark").await;
    finish(a, b, &[]).await;
}

/// Alice records a voice note from Chromium's fake microphone (its timer runs), stops and sends
/// it; Bob's app shows a voice player with the note's length, and plays it: the audio's position
/// advances (or it ends). An audio file shows as a card with a player, its length read from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_recorded_by_one_user_plays_for_the_other() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (a, b) = two_users(&node, &driver, DESKTOP, &FAKE_MEDIA).await;
    to_phone(&a).await; // Alice records on her phone

    a.click("#record").await;
    a.wait_visible("#recorder").await;
    a.wait_for("two seconds recorded", "return document.querySelector('#rec-time').textContent === '0:02';", json!([]))
        .await;
    a.screenshot("voice-recording-phone").await;
    a.click("#rec-send").await;
    a.wait_for("the recorder to close", "return document.querySelector('#recorder').hidden;", json!([])).await;

    let on_b = wait_attachments(&b, "", "the voice note on Bob's screen", "got.length === 1").await;
    assert!(on_b[0]["cls"].as_str().unwrap().contains("player voice"), "a voice player: {on_b}");
    let time = on_b[0]["time"].as_str().unwrap().to_owned();
    let total = time.split(" / ").nth(1).unwrap_or_default();
    assert!(["0:02", "0:03"].contains(&total), "its length is shown: {time}");

    b.click("#messages .player.voice .play").await;
    let played = b
        .wait_for(
            "the voice note to play",
            "const a = document.querySelector('#messages .player.voice audio'); \
             return a && (a.currentTime > 0.5 || a.ended) ? { t: a.currentTime, ended: a.ended, time: document.querySelector('#messages .player.voice .play-time').textContent } : null;",
            json!([]),
        )
        .await;
    assert!(played["time"].as_str().unwrap().ends_with(total), "the length stays shown while playing: {played}");
    b.screenshot("voice-playing-desktop").await;
    a.wait_for(
        "the note in Alice's list",
        "return !!document.querySelector('#messages .msg.own .player.voice');",
        json!([]),
    )
    .await;
    a.screenshot("voice-sent-phone").await;

    // An audio file: its card and a player whose length the file's head tells.
    let dir = tempfile::tempdir().expect("temp dir");
    a.choose_files("#file-input", &[&file(dir.path(), "tone.wav", &wav(3000))]).await;
    wait_uploaded(&a, 1).await;
    send(&a, "a tone").await;
    let tone =
        wait_attachments(&b, "a tone", "the audio file's player with its length", "got[0].time?.endsWith('0:03')")
            .await;
    assert!(tone[0]["cls"].as_str().unwrap().contains("att-audio"), "{tone}");
    assert_eq!(tone[0]["name"], "tone.wav");
    b.screenshot("audio-file-desktop").await;
    finish(a, b, &[]).await;
}

/// Chooses `path` in the file picker and waits for the tray to say it was refused: returns what
/// it says (with a screenshot named `screenshot`), then dismisses it.
async fn refusal_of(b: &Browser, path: &Path, screenshot: &str) -> String {
    b.choose_files("#file-input", &[path]).await;
    let said = b
        .wait_for(
            "the refusal",
            "const f = document.querySelector('#uploads .upload.failed .upload-status'); return f ? f.textContent : null;",
            json!([]),
        )
        .await;
    b.screenshot(screenshot).await;
    b.click("#uploads .upload.failed .upload-x").await;
    b.wait_for("the tray to empty", "return document.querySelector('#uploads').hidden;", json!([])).await;
    said.as_str().unwrap_or_default().to_owned()
}

/// A program renamed `setup.png` is refused with a message that says what may be sent, an image
/// over the node's image limit (256 KiB here) with one that says the limit, and nothing is sent;
/// an upload cancelled midway (the network throttled so it is still going) leaves the tray empty
/// and sends nothing either; a message sent while its file uploads goes once it is uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_says_why_and_a_cancelled_upload_sends_nothing() {
    let uploads = UploadArgs { upload_max_image_bytes: Some(256 * 1024), ..Default::default() };
    let node = TestNode::start(NodeOpts { args: ServeArgs { uploads, ..Default::default() } }).await;
    let driver = Driver::start().await;
    let (a, b) = two_users(&node, &driver, DESKTOP, &[]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut program = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    program.resize(4096, 0x90);

    let said = refusal_of(&a, &file(dir.path(), "setup.png", &program), "files-refused-type-desktop").await;
    assert!(
        said.contains("“setup.png” cannot be sent")
            && said.contains("only images, audio, PDF, text, office documents and archives"),
        "a clear refusal: {said}"
    );
    let said = refusal_of(&a, &file(dir.path(), "big.png", &png(1024, 1024)), "files-refused-size-desktop").await;
    assert_eq!(said, "“big.png” is too large to send (3 MB). An image can be at most 256 KB.");

    // Cancel: 3 MB at 256 KB/s is still uploading when Cancel is pressed.
    let big = file(dir.path(), "big.txt", "all work and no play\n".repeat(150_000).as_bytes());
    throttle(&a, 256 * 1024).await;
    a.choose_files("#file-input", &[&big]).await;
    let progress = a
        .wait_for(
            "the upload to be under way",
            "const bar = document.querySelector('#uploads .upload progress'); \
             return bar && bar.value > 0 && bar.value < bar.max ? { value: bar.value, max: bar.max, status: document.querySelector('#uploads .upload-status').textContent } : null;",
            json!([]),
        )
        .await;
    assert!(progress["status"].as_str().unwrap().starts_with("Uploading… "), "{progress}");
    a.screenshot("files-uploading-desktop").await;
    to_phone(&a).await;
    a.screenshot("files-uploading-phone").await;
    a.click("#uploads .upload .upload-x").await;
    a.wait_for("the tray to empty", "return document.querySelector('#uploads').hidden;", json!([])).await;
    throttle(&a, -1).await;

    // Nothing went out: the next message is the room's only one from Alice, with no attachment.
    send(&a, "nothing attached").await;
    wait_message(&b, "nothing attached").await;
    let files = b.exec("return document.querySelectorAll('#messages .attachment').length;", json!([])).await;
    assert_eq!(files, json!(0));

    // Sent while its file still uploads, a message waits for it, then goes with it.
    throttle(&a, 256 * 1024).await;
    a.choose_files("#file-input", &[&big]).await;
    a.wait_visible("#uploads .upload progress").await;
    send(&a, "sent once uploaded").await;
    a.wait_visible("#uploads-note").await;
    let note = a.text("#uploads-note").await;
    assert_eq!(note, "Your message goes as soon as the upload is done.");
    assert_eq!(a.exec("return document.querySelector('#composer').value;", json!([])).await, "sent once uploaded");
    a.screenshot("files-send-held-phone").await;
    throttle(&a, -1).await;
    let sent = wait_attachments(&b, "sent once uploaded", "the message with its file", "got.length === 1").await;
    assert_eq!(sent[0]["name"], "big.txt");
    a.wait_for("the tray to empty", "return document.querySelector('#uploads').hidden;", json!([])).await;
    finish(a, b, &["/api/uploads"]).await;
}

/// Limits the browser's upload speed to `bytes_per_sec` (-1: no limit).
async fn throttle(b: &Browser, bytes_per_sec: i64) {
    b.cdp("Network.enable", json!({})).await;
    let conditions =
        json!({"offline": false, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_sec});
    b.cdp("Network.emulateNetworkConditions", conditions).await;
}

/// Media links expire (8 s here): Bob's thumbnail loads with the link the message came with;
/// once that has expired, opening the image full size first gets fresh links for it
/// (GET /api/rooms/{room}/attachments/{id}) and shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_media_link_is_renewed_when_the_image_opens() {
    let uploads = UploadArgs { media_url_ttl_secs: Some(8), ..Default::default() };
    let node = TestNode::start(NodeOpts { args: ServeArgs { uploads, ..Default::default() } }).await;
    let driver = Driver::start().await;
    let (a, b) = two_users(&node, &driver, DESKTOP, &[]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    a.choose_files("#file-input", &[&file(dir.path(), "tide.png", &png(300, 200))]).await;
    wait_uploaded(&a, 1).await;
    send(&a, "low tide").await;
    let shown = wait_attachments(&b, "low tide", "the thumbnail", "got[0].img?.loaded").await;
    let thumb = shown[0]["img"]["src"].as_str().unwrap().to_owned();
    let exp =
        |url: &str| url.split("exp=").nth(1).and_then(|v| v.split('&').next()).and_then(|v| v.parse::<u64>().ok());
    let first = exp(&thumb).expect("a signed link");

    b.wait_for("the link to expire", "return Date.now() / 1000 > arguments[0] + 1;", json!([first])).await;
    b.click("#messages .att-image").await;
    let full = b
        .wait_for(
            "the full-size image from a fresh link",
            "const d = document.querySelector('#media-dialog'), i = document.querySelector('#media-img'); \
             return d.open && i.complete && i.naturalWidth > 0 ? { src: i.getAttribute('src'), w: i.naturalWidth } : null;",
            json!([]),
        )
        .await;
    assert_eq!(full["w"], 300);
    let renewed = exp(full["src"].as_str().unwrap()).expect("a signed link");
    assert!(renewed > first, "a fresh link: {full} after {thumb}");
    b.press(ESCAPE).await;
    finish(a, b, &[]).await;
}
