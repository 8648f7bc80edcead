//! The browser app in real headless Chromium (Debian's `chromium` + `chromium-driver`), against
//! real in-process nodes: two users chatting, a reload, a network drop, hostile bodies, lazy
//! loading, inline errors, email sign-in, editing and deleting messages, managing rooms, and
//! screenshots at desktop and phone sizes (saved under `$CARGO_TARGET_DIR/browser-artifacts/`).
//! Without chromedriver these tests fail.

use confab::ServeArgs;
use confab_tests::browser::{Driver, Proxy};
use confab_tests::chat_page::{
    confirm, create_room, message_action, open_info, open_room, room_names, send, shown, sign_up, wait_event_line,
    wait_list_entry, wait_listed, wait_message, wait_online,
};
use confab_tests::smtp::SmtpSink;
use confab_tests::{NodeOpts, TestNode, eventually, unique};
use serde_json::json;

const DESKTOP: (u32, u32) = (1280, 800);

/// Messages sent over `ws` into `room`, each acknowledged before the next batch of 50.
async fn post(ws: &mut confab_tests::client::Ws, room: i64, bodies: &[String]) {
    for chunk in bodies.chunks(50) {
        for body in chunk {
            ws.send(json!({"type": "send", "room": room, "cid": unique("c"), "body": body})).await;
        }
        for _ in chunk {
            ws.recv_type("ack").await;
        }
    }
}

/// Alice on `base_a` and Bob on `base_b`, each in their own browser, chat in `general`: typing
/// shows, messages arrive live, own messages are styled apart, a reply quotes its original,
/// Shift+Enter makes a new line, and each sees the other online.
async fn two_users_chat(driver: &Driver, base_a: &str, base_b: &str) {
    let (alice, bob) = (unique("alice"), unique("bob"));
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, base_a, &alice).await;
    sign_up(&b, base_b, &bob).await;
    open_room(&a, "general").await;
    open_room(&b, "general").await;

    // Bob sees Alice online (from `joined` or a later `presence`).
    b.click("#open-info").await;
    b.wait_for(
        "alice listed online in room info",
        "return [...document.querySelectorAll('#info-members .member.online .name')].some((n) => n.textContent === arguments[0]);",
        json!([alice]),
    )
    .await;

    b.type_into("#composer", "typing away").await;
    a.wait_for(
        "bob's typing indicator",
        "return document.querySelector('#typing').textContent.includes(arguments[0]);",
        json!([bob]),
    )
    .await;
    b.exec("document.querySelector('#composer').value = '';", json!([])).await;

    send(&a, "hello from alice").await;
    let on_b = wait_message(&b, "hello from alice").await;
    assert_eq!(on_b["own"], false, "someone else's message is not styled as own");
    let on_a = wait_message(&a, "hello from alice").await;
    assert_eq!(on_a["own"], true, "own message is styled apart");
    assert_eq!(on_a["seq"], on_b["seq"]);

    // Bob replies to it, on two lines (Shift+Enter), sent with Enter.
    b.exec(
        "[...document.querySelectorAll('#messages .msg')].find((li) => li.dataset.seq == arguments[0]).querySelector('.reply-btn').click();",
        json!([on_b["seq"]]),
    )
    .await;
    b.wait_visible("#reply-box").await;
    b.type_into("#composer", "line one").await;
    b.shift_enter().await;
    b.type_into("#composer", "line two\u{E007}").await;
    let reply = wait_message(&a, "line one\nline two").await;
    let quote = a
        .wait_for(
            "the reply's quote",
            "const li = document.querySelector(`#messages .msg[data-seq=\"${arguments[0]}\"]`); \
             const q = li && li.querySelector('.quote'); return q && q.textContent.includes('hello from alice') ? q.textContent : null;",
            json!([reply["seq"]]),
        )
        .await;
    assert!(quote.as_str().unwrap().contains(&alice), "quote names the original sender: {quote}");
    assert!(b.exec("return document.querySelector('#reply-box').hidden;", json!([])).await.as_bool().unwrap());
    // Both pages show the same messages, in the same order.
    eventually("both pages agree", || async {
        let (x, y) = (shown(&a).await, shown(&b).await);
        let key =
            |v: &Vec<confab_tests::chat_page::Shown>| v.iter().map(|m| (m.seq, m.body.clone())).collect::<Vec<_>>();
        (key(&x) == key(&y) && x.len() >= 2).then_some(())
    })
    .await;
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_in_real_time_in_two_browsers() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    two_users_chat(&driver, &node.base, &node.base).await;
    node.stop().await;
}

/// Two users in two browsers, each signed in on a different node of a three-node cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_on_two_nodes_of_a_cluster_chat() {
    let driver = Driver::start().await;
    let sb = confab_tests::cluster::Sandbox::start(env!("CARGO_BIN_EXE_confab-test-node"), 3).await;
    two_users_chat(&driver, &sb.bases[0], &sb.bases[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_session_and_the_room() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&b, &node.base, &unique("carol")).await;

    // Create a room through the dialog: name, description, public.
    let room = unique("plans");
    b.click("#new-room").await;
    b.type_into("#room-name", &room).await;
    b.type_into("#room-desc", "Where we plan things").await;
    b.click("#room-create").await;
    b.wait_for(
        "the new room to open",
        "return document.querySelector('#room-title').textContent === arguments[0];",
        json!([room]),
    )
    .await;
    b.wait_for("joined", "return /online/.test(document.querySelector('#room-sub').textContent);", json!([])).await;
    assert!(b.text("#room-sub").await.contains("Where we plan things"));
    send(&b, "remember the milk").await;
    wait_message(&b, "remember the milk").await;

    b.refresh().await;
    wait_online(&b).await;
    b.wait_for(
        "the same room after reload",
        "return document.querySelector('#room-title').textContent === arguments[0];",
        json!([room]),
    )
    .await;
    wait_message(&b, "remember the milk").await;
    let auth_hidden = b.exec("return document.querySelector('#auth').hidden;", json!([])).await;
    assert_eq!(auth_hidden, true, "no login form after a reload");
    b.assert_clean_console(&[]).await;
    b.quit().await;
    node.stop().await;
}

/// Messages in another room raise its unread count and update its last message; opening it shows
/// the "New messages" divider before the first unread one, and reading sends the read cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_divider_and_read_cursor() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let reader = unique("ivy");
    sign_up(&b, &node.base, &reader).await;
    open_room(&b, "general").await;
    let writer = node.user(&unique("jack")).await;
    let room = writer.room_id("general").await;
    let mut ws = writer.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    ws.send(json!({"type": "send", "room": room, "cid": "seen", "body": "already read"})).await;
    ws.recv_type("ack").await;
    wait_message(&b, "already read").await;

    // Ivy moves to a room of her own; Jack writes three messages in general meanwhile.
    let quiet = unique("quiet");
    b.click("#new-room").await;
    b.type_into("#room-name", &quiet).await;
    b.click("#room-create").await;
    b.wait_for(
        "the new room",
        "return document.querySelector('#room-title').textContent === arguments[0];",
        json!([quiet]),
    )
    .await;
    for i in 1..=3 {
        ws.send(json!({"type": "send", "room": room, "cid": format!("u{i}"), "body": format!("unread {i}")})).await;
        ws.recv_type("ack").await;
    }
    let badge = "const b = [...document.querySelectorAll('#rooms .room')].find((x) => x.querySelector('.room-name').textContent === 'general');                  return b ? { badge: b.querySelector('.badge')?.textContent ?? null, last: b.querySelector('.room-last').textContent } : null;";
    let seen = b
        .wait_for(
            "general's unread badge",
            &format!("const r = (() => {{ {badge} }})(); return r && r.badge === '3' ? r : null;"),
            json!([]),
        )
        .await;
    assert!(seen["last"].as_str().unwrap().ends_with("unread 3"), "last message preview: {seen}");

    open_room(&b, "general").await;
    let first_unread = b
        .wait_for(
            "the divider",
            "const d = document.querySelector('#messages .divider'); const n = d && d.nextElementSibling;              return n ? n.querySelector('.body').textContent : null;",
            json!([]),
        )
        .await;
    assert_eq!(first_unread, "unread 1");
    // The page tells the server what was read: the list, asked afresh, has nothing unread.
    let me = confab_tests::client::login(&node.base, &reader, confab_tests::chat_page::PASSWORD).await.1;
    let token = me["token"].as_str().expect("token").to_owned();
    eventually("the read cursor to reach the head", || {
        let (base, token) = (node.base.clone(), token.clone());
        async move {
            let r: serde_json::Value = reqwest::Client::new()
                .get(format!("{base}/api/rooms"))
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let g = r["rooms"].as_array()?.iter().find(|x| x["name"] == "general")?.clone();
            (g["unread"] == 0 && g["read_seq"] == g["head_seq"]).then_some(())
        }
    })
    .await;
    b.assert_clean_console(&[]).await;
    b.quit().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_reconnects_with_exactly_the_messages_sent_meanwhile() {
    // The page's origin is the proxy's: the node is told so, as behind any proxy.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let args = ServeArgs { public_origin: Some(vec![origin]), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let addr = node.node.as_ref().expect("running").addr;
    let proxy = Proxy::start_on(listener, addr);
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&b, &proxy.base(), &unique("dave")).await;
    open_room(&b, "general").await;

    let erin = node.user(&unique("erin")).await;
    let room = erin.room_id("general").await;
    let mut ws = erin.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    let say = |i: usize| json!({"type": "send", "room": room, "cid": format!("m{i}"), "body": format!("before {i}")});
    for i in 0..3 {
        ws.send(say(i)).await;
        ws.recv_type("ack").await;
    }
    wait_message(&b, "before 2").await;

    proxy.cut();
    b.wait_for(
        "the page to notice the drop",
        "return document.querySelector('#status').dataset.state !== 'online';",
        json!([]),
    )
    .await;
    assert!(b.exec("return !document.querySelector('#conn-banner').hidden;", json!([])).await.as_bool().unwrap());
    for i in 0..5 {
        ws.send(json!({"type": "send", "room": room, "cid": format!("d{i}"), "body": format!("during {i}")})).await;
        ws.recv_type("ack").await;
    }
    // Dave writes while offline too: it waits, and goes out once (same cid) after the reconnect.
    send(&b, "written offline").await;
    proxy.restore();
    wait_online(&b).await;
    wait_message(&b, "during 4").await;
    wait_message(&b, "written offline").await;

    let msgs = shown(&b).await;
    let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
    let first = seqs[0];
    assert_eq!(seqs, (first..first + seqs.len() as u64).collect::<Vec<_>>(), "no gap, no duplicate: {seqs:?}");
    let bodies: Vec<&str> = msgs.iter().map(|m| m.body.as_str()).collect();
    let tail = &bodies[bodies.len() - 9..];
    assert_eq!(
        tail,
        [
            "before 0",
            "before 1",
            "before 2",
            "during 0",
            "during 1",
            "during 2",
            "during 3",
            "during 4",
            "written offline"
        ]
    );
    let pending = b
        .exec("return document.querySelectorAll('#messages .msg.pending, #messages .msg.failed').length;", json!([]))
        .await;
    assert_eq!(pending, 0);
    // The store agrees: the offline message was stored once.
    let (_, hist) = erin.get(&format!("/api/rooms/{room}/messages?limit=100")).await;
    let stored = hist["messages"].as_array().unwrap().iter().filter(|m| m["body"] == "written offline").count();
    assert_eq!(stored, 1);
    // The browser reports the connections the proxy cut; the app itself logs nothing.
    b.assert_clean_console(&["WebSocket connection", "net::ERR_"]).await;
    b.quit().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_body_shows_as_text_and_runs_nothing() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&b, &node.base, &unique("frank")).await;
    open_room(&b, "general").await;

    let mallory = node.user(&unique("mallory")).await;
    let room = mallory.room_id("general").await;
    let mut ws = mallory.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    let bodies = [
        "<img src=x onerror=\"window.__pwned=1\">",
        "<script>window.__pwned=2</script>",
        "javascript:window.__pwned=3 and https://example.com/a?b=1.",
    ];
    for (i, body) in bodies.iter().enumerate() {
        ws.send(json!({"type": "send", "room": room, "cid": format!("x{i}"), "body": body})).await;
        ws.recv_type("ack").await;
    }
    for body in bodies {
        wait_message(&b, body).await;
    }
    let check = b
        .exec(
            "const m = document.querySelector('#messages'); return { pwned: window.__pwned ?? null, \
               imgs: m.querySelectorAll('img, script').length, \
               links: [...m.querySelectorAll('a')].map((a) => a.href) };",
            json!([]),
        )
        .await;
    assert_eq!(check["pwned"], serde_json::Value::Null, "a body ran script");
    assert_eq!(check["imgs"], 0, "a body became markup");
    assert_eq!(check["links"], json!(["https://example.com/a?b=1"]), "only the https URL is a link");
    b.assert_clean_console(&[]).await;
    b.quit().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_loading_reaches_the_first_message_of_a_long_room() {
    let node = TestNode::start(NodeOpts::default()).await;
    let poster = node.user(&unique("poster")).await;
    let room = poster.create_room(&unique("long"), "public").await;
    let (_, info) = poster.get(&format!("/api/rooms/{room}")).await;
    let name = info["name"].as_str().unwrap().to_owned();
    let mut ws = poster.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    const N: u64 = 230;
    post(&mut ws, room, &(1..=N).map(|i| format!("message number {i}")).collect::<Vec<_>>()).await;

    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&b, &node.base, &unique("reader")).await;
    open_room(&b, &name).await;
    wait_message(&b, &format!("message number {N}")).await;
    // Scroll to the top, page after page; after each page the message that was on top stays in view.
    loop {
        let first = shown(&b).await[0].seq;
        if first == 1 {
            break;
        }
        b.exec("document.querySelector('#scroller').scrollTop = 0;", json!([])).await;
        b.wait_for(
            "an older page",
            "const f = document.querySelector('#messages .msg[data-seq]'); return Number(f.dataset.seq) < arguments[0];",
            json!([first]),
        )
        .await;
        let kept = b
            .exec(
                "const s = document.querySelector('#scroller').getBoundingClientRect(); \
                 const e = document.querySelector(`#messages .msg[data-seq=\"${arguments[0]}\"]`).getBoundingClientRect(); \
                 return e.top >= s.top - 2 && e.top < s.bottom;",
                json!([first]),
            )
            .await;
        assert_eq!(kept, true, "the scroll position is kept when message {first} gets older ones above it");
    }
    let seqs: Vec<u64> = shown(&b).await.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=N).collect::<Vec<_>>());
    b.wait_for(
        "the start-of-room note",
        "return document.querySelector('#older').textContent.includes('start');",
        json!([]),
    )
    .await;
    b.assert_clean_console(&[]).await;
    b.quit().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sends_say_why_inline() {
    let args =
        ServeArgs { max_body_chars: Some(40), rate_burst: Some(3), rate_per_sec: Some(0.01), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&b, &node.base, &unique("gina")).await;
    open_room(&b, "general").await;

    // Too long: the counter says so while typing, and Enter sends nothing but says why.
    b.type_into("#composer", &"x".repeat(60)).await;
    let counter = b
        .wait_for(
            "the counter over the limit",
            "const c = document.querySelector('#counter'); return !c.hidden && c.classList.contains('over') ? c.textContent : null;",
            json!([]),
        )
        .await;
    assert_eq!(counter, "60 / 40");
    b.type_into("#composer", "\u{E007}").await;
    let error = b
        .wait_for("the length error", "return document.querySelector('#compose-error').textContent || null;", json!([]))
        .await;
    assert_eq!(error, "This message is 60 characters long, and the limit is 40. Shorten it by 20 and send it again.");
    let left = b
        .exec(
            "return { msgs: document.querySelectorAll('#messages .msg').length, \
               text: document.querySelector('#composer').value.length };",
            json!([]),
        )
        .await;
    assert_eq!(left, json!({"msgs": 0, "text": 60}), "nothing sent, nothing stuck, the text kept");
    b.exec(
        "const c = document.querySelector('#composer'); c.value = ''; c.dispatchEvent(new Event('input'));",
        json!([]),
    )
    .await;
    assert!(b.exec("return document.querySelector('#counter').hidden;", json!([])).await.as_bool().unwrap());
    for i in 0..4 {
        send(&b, &format!("quick {i}")).await;
    }
    b.wait_for(
        "the rate-limit error",
        "return /too fast/.test(document.querySelector('#compose-error').textContent);",
        json!([]),
    )
    .await;
    // A refused send says why on the message, and can be removed.
    b.wait_visible("#messages .msg.failed .drop-failed").await;
    let failed = b.exec("return document.querySelectorAll('#messages .msg.failed').length;", json!([])).await;
    b.click("#messages .msg.failed .drop-failed").await;
    b.wait_for(
        "the failed message removed",
        "return document.querySelectorAll('#messages .msg.failed').length === arguments[0] - 1;",
        json!([failed]),
    )
    .await;
    b.assert_clean_console(&[]).await;
    b.quit().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_code_sign_in_works_in_the_browser() {
    let mut smtp = SmtpSink::start().await;
    let args = ServeArgs { smtp_url: Some(smtp.url.clone()), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    b.goto(&node.base).await;
    b.click("#tab-email").await;
    b.type_into("#email", &format!("{}@example.org", unique("hana"))).await;
    b.click("#email-submit").await;
    let code = smtp.next_code().await;
    b.type_into("#code", &code).await;
    b.click("#email-submit").await;
    wait_online(&b).await;
    open_room(&b, "general").await;
    b.assert_clean_console(&[]).await;
    b.quit().await;
    node.stop().await;
}

/// A sender's messages in a row share one header (a message of someone else, or of oneself,
/// starts a new one), and times follow the browser's locale: 12-hour in en-US, 24-hour in de-DE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_messages_are_grouped_and_times_follow_the_locale() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let room_name = unique("grouped");
    let poster = node.user(&unique("lee")).await;
    let room = poster.create_room(&room_name, "public").await;
    let us = driver.browser(DESKTOP.0, DESKTOP.1).await;
    us.locale("en-US").await;
    sign_up(&us, &node.base, &unique("kim")).await;
    open_room(&us, &room_name).await;
    let mut ws = poster.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    post(&mut ws, room, &["one".into(), "two".into(), "three".into()]).await;
    wait_message(&us, "three").await;
    send(&us, "mine").await;
    wait_message(&us, "mine").await;
    post(&mut ws, room, &["four".into()]).await;
    wait_message(&us, "four").await;

    let rows = us
        .exec(
            "return [...document.querySelectorAll('#messages .msg[data-seq]')].map((li) => ({ \
               body: li.querySelector('.body').textContent, cont: li.classList.contains('cont'), \
               header: li.querySelector('.meta').getClientRects().length > 0, \
               time: li.querySelector('.time').textContent }));",
            json!([]),
        )
        .await;
    let grouped: Vec<(String, bool, bool)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["body"].as_str().unwrap().to_owned(), r["cont"].as_bool().unwrap(), r["header"].as_bool().unwrap()))
        .collect();
    let expect = [("one", false), ("two", true), ("three", true), ("mine", false), ("four", false)];
    assert_eq!(
        grouped,
        expect.iter().map(|(b, c)| (b.to_string(), *c, !*c)).collect::<Vec<_>>(),
        "one header per run of one sender's messages"
    );
    let time = rows[0]["time"].as_str().unwrap().to_owned();
    let twelve_hour = us.exec("return /^\\d{1,2}:\\d{2}\\s?[AP]M$/.test(arguments[0]);", json!([time])).await;
    assert_eq!(twelve_hour, true, "en-US writes {time:?} with AM or PM");
    us.assert_clean_console(&[]).await;

    let de = driver.browser(DESKTOP.0, DESKTOP.1).await;
    de.locale("de-DE").await;
    sign_up(&de, &node.base, &unique("max")).await;
    open_room(&de, &room_name).await;
    wait_message(&de, "four").await;
    let time = de.text("#messages .msg[data-seq] .time").await;
    // A 24-hour clock: no AM or PM (Chromium writes the hour before 10 with one digit: "1:12").
    let day_hour = de.exec("return /^\\d{1,2}:\\d{2}$/.test(arguments[0]);", json!([time])).await;
    assert_eq!(day_hour, true, "de-DE writes {time:?} on a 24-hour clock");
    de.assert_clean_console(&[]).await;
    us.quit().await;
    de.quit().await;
    node.stop().await;
}

/// Where the reader was in a long room is where a reload brings them back, not the bottom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_place_in_a_long_room() {
    let node = TestNode::start(NodeOpts::default()).await;
    let poster = node.user(&unique("poster")).await;
    let name = unique("history");
    let room = poster.create_room(&name, "public").await;
    let mut ws = poster.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    post(&mut ws, room, &(1..=150).map(|i| format!("line {i}")).collect::<Vec<_>>()).await;

    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&b, &node.base, &unique("nia")).await;
    open_room(&b, &name).await;
    wait_message(&b, "line 150").await;
    // Scroll up to older messages (a page the first one did not load), then put "line 70" at the top.
    b.wait_for(
        "line 70 loaded",
        "const s = document.querySelector('#scroller'); s.scrollTop = 0; \
         return !!document.querySelector('#messages .msg[data-seq=\"70\"]');",
        json!([]),
    )
    .await;
    b.exec("document.querySelector('#messages .msg[data-seq=\"70\"]').scrollIntoView({ block: 'start' });", json!([]))
        .await;
    let place = b
        .wait_for(
            "the place to be kept",
            "const p = JSON.parse(localStorage.getItem('confab.place.' + arguments[0]) || 'null'); \
             return p && p.seq === 70 ? p : null;",
            json!([room]),
        )
        .await;

    b.refresh().await;
    wait_online(&b).await;
    b.wait_for(
        "line 70 back at the top after the reload",
        "const li = document.querySelector('#messages .msg[data-seq=\"70\"]'); if (!li) return false; \
         const s = document.querySelector('#scroller').getBoundingClientRect(); \
         return Math.abs(li.getBoundingClientRect().top - s.top - arguments[0]) <= 2;",
        json!([place["offset"]]),
    )
    .await;
    let bottom = b
        .exec(
            "const s = document.querySelector('#scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight < 80;",
            json!([]),
        )
        .await;
    assert_eq!(bottom, false, "the reload did not jump to the bottom");
    b.assert_clean_console(&[]).await;
    b.quit().await;
    node.stop().await;
}

/// Screenshots for people: a conversation at a desktop size, and the same at a phone size with
/// the room drawer closed and open. Saved under `$CARGO_TARGET_DIR/browser-artifacts/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_at_desktop_and_phone_viewports() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, &node.base, "alice").await;
    a.click("#new-room").await;
    a.type_into("#room-name", "design-review").await;
    a.type_into("#room-desc", "Mockups and feedback").await;
    a.click("#room-create").await;
    a.wait_for(
        "the new room",
        "return document.querySelector('#room-title').textContent === 'design-review';",
        json!([]),
    )
    .await;
    sign_up(&b, &node.base, "bob").await;
    open_room(&a, "general").await;
    open_room(&b, "general").await;
    send(&a, "Morning! Did everyone see the release notes? https://example.com/notes").await;
    wait_message(&b, "Morning! Did everyone see the release notes? https://example.com/notes").await;
    send(&b, "Yes, looks good. This shows as text: <img src=x onerror=alert(1)>").await;
    let last = wait_message(&a, "Yes, looks good. This shows as text: <img src=x onerror=alert(1)>").await;
    a.exec(
        "document.querySelector(`#messages .msg[data-seq=\"${arguments[0]}\"] .reply-btn`).click();",
        json!([last["seq"]]),
    )
    .await;
    send(&a, "Great, shipping it after lunch.").await;
    wait_message(&b, "Great, shipping it after lunch.").await;
    send(&a, "I'll put the final mockups in design-review.").await;
    let mockups = wait_message(&b, "I'll put the final mockups in design-review.").await["seq"].as_u64().unwrap();
    // An edited message, a deleted one, and a mention of Alice.
    message_action(&a, mockups, "act-edit").await;
    a.clear("#messages .msg.editing .edit-box").await;
    a.type_into("#messages .msg.editing .edit-box", "I'll put the final mockups in design-review today.\u{E007}").await;
    wait_message(&b, "I'll put the final mockups in design-review today.").await;
    send(&b, "wrong window, sorry").await;
    let oops = wait_message(&b, "wrong window, sorry").await["seq"].as_u64().unwrap();
    message_action(&b, oops, "act-delete").await;
    confirm(&b).await;
    a.wait_visible("#messages .msg.tombstone").await;
    send(&b, "@alice the logo needs the new colours too").await;
    wait_message(&a, "@alice the logo needs the new colours too").await;
    b.type_into("#composer", "On my way").await;
    a.wait_for("typing", "return document.querySelector('#typing').textContent !== '';", json!([])).await;
    a.click("#open-info").await;
    a.wait_visible("#info-members .member.online").await;
    let desktop = a.screenshot("desktop").await;

    let phone = driver.browser(DESKTOP.0, DESKTOP.1).await;
    phone.emulate_phone(390, 844).await;
    phone.color_scheme("dark").await;
    sign_up(&phone, &node.base, "carol").await;
    open_room(&phone, "general").await;
    send(&phone, "Hi both, joining from my phone").await;
    wait_message(&phone, "Hi both, joining from my phone").await;
    let phone_chat = phone.screenshot("phone").await;
    // On a phone the reply action is not on every message: only on the one tapped.
    let visible_replies = "return [...document.querySelectorAll('#messages .reply-btn')].filter((b) => b.getClientRects().length > 0).length;";
    assert_eq!(phone.exec(visible_replies, json!([])).await, 0);
    phone.exec("document.querySelector('#messages .msg[data-seq] .bubble').click();", json!([])).await;
    assert_eq!(phone.exec(visible_replies, json!([])).await, 1);
    phone.exec("document.querySelector('#messages .msg.picked .bubble').click();", json!([])).await;
    phone.click("#open-drawer").await;
    phone
        .wait_for(
            "the drawer",
            "const r = document.querySelector('#sidebar').getBoundingClientRect(); return r.left >= 0;",
            json!([]),
        )
        .await;
    let phone_drawer = phone.screenshot("phone-drawer").await;
    for p in [&desktop, &phone_chat, &phone_drawer] {
        assert!(
            std::fs::metadata(p).expect("screenshot saved").len() > 10_000,
            "{} is not a real picture",
            p.display()
        );
        println!("screenshot: {}", p.display());
    }
    for browser in [a, b, phone] {
        browser.assert_clean_console(&[]).await;
        browser.quit().await;
    }
    node.stop().await;
}

/// Alice edits and deletes her messages; Bob, in another browser, sees the new text with its
/// "edited" mark, then the tombstone in the message's place, and his reply's quote saying the
/// original was deleted, all live; a reload shows the same from history. Escape cancels an edit,
/// and Bob has no edit or delete buttons on Alice's messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_show_live_to_the_other_user() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (a, b) = (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(DESKTOP.0, DESKTOP.1).await);
    sign_up(&a, &node.base, &unique("alice")).await;
    sign_up(&b, &node.base, &unique("bob")).await;
    open_room(&a, "general").await;
    open_room(&b, "general").await;

    send(&a, "first draft").await;
    send(&a, "this one goes").await;
    let draft = wait_message(&b, "first draft").await["seq"].as_u64().unwrap();
    let doomed = wait_message(&b, "this one goes").await["seq"].as_u64().unwrap();
    wait_message(&a, "this one goes").await;
    // Bob replies to the message Alice will delete.
    message_action(&b, doomed, "reply-btn").await;
    send(&b, "replying to it").await;
    let reply = wait_message(&a, "replying to it").await["seq"].as_u64().unwrap();
    // Bob may reply to Alice's messages, not edit or delete them.
    let bobs_buttons = b
        .exec(
            "const li = document.querySelector(`#messages > .msg[data-seq=\"${arguments[0]}\"]`); \
             return { edit: !!li.querySelector('.act-edit'), del: !li.querySelector('.act-delete').hidden };",
            json!([draft]),
        )
        .await;
    assert_eq!(bobs_buttons, json!({"edit": false, "del": false}));

    // Escape leaves the message as it was.
    message_action(&a, draft, "act-edit").await;
    a.wait_visible("#messages .msg.editing .edit-box").await;
    a.type_into("#messages .msg.editing .edit-box", " never mind\u{E00C}").await;
    a.wait_for("the editor to close", "return !document.querySelector('#messages .msg.editing');", json!([])).await;
    assert_eq!(a.text(&format!("#messages > .msg[data-seq=\"{draft}\"] .body")).await, "first draft");

    // Enter saves: Bob sees the new text and the mark.
    message_action(&a, draft, "act-edit").await;
    a.clear("#messages .msg.editing .edit-box").await;
    a.type_into("#messages .msg.editing .edit-box", "final wording\u{E007}").await;
    let edited = "const li = document.querySelector(`#messages > .msg[data-seq=\"${arguments[0]}\"]`); \
                  return li && li.querySelector('.body').textContent === 'final wording' && \
                  li.querySelector('.bubble > .edited')?.textContent === 'edited';";
    b.wait_for("the edit on Bob's page", edited, json!([draft])).await;
    a.wait_for("the edit on Alice's page", edited, json!([draft])).await;

    // Delete, after the confirmation: a tombstone in the same place, and the quote says so.
    message_action(&a, doomed, "act-delete").await;
    confirm(&a).await;
    let tombstone = "const li = document.querySelector(`#messages > .msg[data-seq=\"${arguments[0]}\"]`); \
                     return li && li.classList.contains('tombstone') && li.querySelector('.body').textContent === 'This message was deleted.' \
                       && li.previousElementSibling?.dataset.seq === String(arguments[1]);";
    b.wait_for("the tombstone on Bob's page", tombstone, json!([doomed, draft])).await;
    let quote = "const q = document.querySelector(`#messages > .msg[data-seq=\"${arguments[0]}\"] .quote`); \
                 return q && q.classList.contains('deleted') && q.textContent.includes('This message was deleted.');";
    b.wait_for("the reply's quote saying deleted", quote, json!([reply])).await;
    a.wait_for("the tombstone on Alice's page", tombstone, json!([doomed, draft])).await;
    assert!(!b.text(&format!("#messages > .msg[data-seq=\"{doomed}\"]")).await.contains("this one goes"));

    // History agrees after a reload.
    b.refresh().await;
    wait_online(&b).await;
    b.wait_for("the edit after a reload", edited, json!([draft])).await;
    b.wait_for("the tombstone after a reload", tombstone, json!([doomed, draft])).await;
    b.wait_for("the quote after a reload", quote, json!([reply])).await;
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
    node.stop().await;
}

/// The owner renames and describes a room from its info panel: the other member's header, room
/// list and open info panel follow live, and each change is a quiet line in the conversation.
/// Then the owner hands the room over (the new owner gets the owner's controls) and the new owner
/// deletes it: it leaves the other's list, whose page goes to `general`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_room_and_handing_it_over_show_live_to_every_member() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (a, b) = (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(DESKTOP.0, DESKTOP.1).await);
    let (alice, bob) = (unique("alice"), unique("bob"));
    sign_up(&a, &node.base, &alice).await;
    let (before, after) = (unique("plans"), unique("roadmap"));
    create_room(&a, &before, "", false).await;
    sign_up(&b, &node.base, &bob).await;
    open_room(&b, &before).await;
    open_info(&b).await;
    b.wait_for(
        "bob in the member list",
        "return [...document.querySelectorAll('#info-members .name')].some((n) => n.textContent.startsWith(arguments[0]));",
        json!([bob]),
    )
    .await;
    assert!(b.exec("return document.querySelector('#room-edit-box').hidden;", json!([])).await.as_bool().unwrap());

    open_info(&a).await;
    a.click("#room-edit-box summary").await;
    a.clear("#room-edit-name").await;
    a.type_into("#room-edit-name", &after).await;
    a.type_into("#room-edit-desc", "What ships when").await;
    a.click("#room-edit-save").await;

    b.wait_for(
        "the new name in Bob's header, list and panel",
        "return document.querySelector('#room-title').textContent === arguments[0] && \
         document.querySelector('#info-name').textContent === arguments[0] && \
         /What ships when/.test(document.querySelector('#room-sub').textContent) && \
         [...document.querySelectorAll('#rooms .room-name')].some((n) => n.textContent === arguments[0]);",
        json!([after]),
    )
    .await;
    assert!(!room_names(&b).await.contains(&before), "the old name left the list");
    let line = wait_event_line(&b, "renamed the room").await;
    assert_eq!(line, format!("{alice} renamed the room to “{after}”"));
    wait_event_line(&b, "changed the description to “What ships when”").await;
    wait_event_line(&a, "You renamed the room").await;

    // Alice hands the room to Bob: his panel gets the owner's controls.
    a.wait_for(
        "bob's make-owner button",
        "const li = [...document.querySelectorAll('#info-members .member')].find((x) => x.querySelector('.name').textContent === arguments[0]); \
         const btn = li && li.querySelector('.member-owner'); if (btn) btn.click(); return !!btn;",
        json!([bob]),
    )
    .await;
    confirm(&a).await;
    wait_event_line(&b, &format!("{alice} made you the owner")).await;
    b.wait_for(
        "the owner's controls on Bob's panel",
        "return !document.querySelector('#room-edit-box').hidden && !document.querySelector('#delete-room').hidden \
           && /owner: /.test(document.querySelector('#info-meta').textContent) \
           && document.querySelector('#info-meta').textContent.includes(arguments[0]);",
        json!([bob]),
    )
    .await;
    a.wait_for(
        "Alice without them",
        "return document.querySelector('#room-edit-box').hidden && document.querySelector('#delete-room').hidden \
           && !document.querySelector('#leave-room').hidden;",
        json!([]),
    )
    .await;

    // Bob deletes it: Alice's page loses it and goes to general.
    b.click("#delete-room").await;
    confirm(&b).await;
    for page in [&a, &b] {
        wait_listed(page, &after, false).await;
        page.wait_for(
            "general to open",
            "return document.querySelector('#room-title').textContent === 'general';",
            json!([]),
        )
        .await;
    }
    let note = a.wait_for("the note", "return document.querySelector('#toast')?.textContent || null;", json!([])).await;
    assert_eq!(note, format!("The room {after} was deleted."));
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
    node.stop().await;
}

/// A member leaves a private room from its info panel: it leaves their room list (and their
/// screen), and the owner sees the quiet line saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_private_room_takes_it_off_the_list_and_tells_the_others() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (a, b) = (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(DESKTOP.0, DESKTOP.1).await);
    let (alice, bob) = (unique("alice"), unique("bob"));
    sign_up(&a, &node.base, &alice).await;
    sign_up(&b, &node.base, &bob).await;
    let room = unique("secret");
    create_room(&a, &room, "Just us", true).await;
    open_info(&a).await;
    a.type_into("#add-member-name", &format!("{bob}\u{E007}")).await;
    wait_event_line(&a, &format!("You added {bob}")).await;

    open_room(&b, &room).await; // listed live: the inbox says Bob was added
    open_info(&b).await;
    assert!(b.exec("return document.querySelector('#delete-room').hidden;", json!([])).await.as_bool().unwrap());
    b.click("#leave-room").await;
    confirm(&b).await;
    wait_listed(&b, &room, false).await;
    b.wait_for("general to open", "return document.querySelector('#room-title').textContent === 'general';", json!([]))
        .await;
    assert_eq!(wait_event_line(&a, "left the room").await, format!("{bob} left the room"));
    a.wait_for(
        "bob off the member list",
        "return ![...document.querySelectorAll('#info-members .name')].some((n) => n.textContent === arguments[0]);",
        json!([bob]),
    )
    .await;
    // The owner cannot leave before handing the room over: the panel says so.
    assert!(
        a.exec(
            "return document.querySelector('#leave-room').hidden && !document.querySelector('#leave-note').hidden;",
            json!([])
        )
        .await
        .as_bool()
        .unwrap()
    );
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
    node.stop().await;
}

/// The room list is live without joining its rooms (protocol 3: the inbox): a public room Alice
/// creates appears in Bob's list at once, and so does a private room once she adds him; her
/// messages in a room Bob is a member of but has not open raise its unread badge and change its
/// preview, while Bob's socket stays out of that room (Alice sees only herself online there).
/// Alice's page is on `base_a`, Bob's on `base_b`.
async fn room_list_live(driver: &Driver, base_a: &str, base_b: &str) {
    let (a, b) = (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(DESKTOP.0, DESKTOP.1).await);
    let (alice, bob) = (unique("alice"), unique("bob"));
    sign_up(&a, base_a, &alice).await;
    sign_up(&b, base_b, &bob).await;
    open_room(&b, "general").await;

    let public = unique("lobby");
    create_room(&a, &public, "Open to all", false).await;
    wait_list_entry(&b, &public, "listed, not joined", "!e.private && e.last === 'Open to all'").await;

    let private = unique("huddle");
    create_room(&a, &private, "", true).await;
    assert!(!room_names(&b).await.contains(&private), "a private room is not listed for others");
    open_info(&a).await;
    a.type_into("#add-member-name", &format!("{bob}\u{E007}")).await;
    wait_list_entry(&b, &private, "listed as private", "e.private").await;

    // Alice writes in the private room; Bob, in general, gets the count and the preview.
    for i in 1..=3 {
        send(&a, &format!("note {i}")).await;
        wait_message(&a, &format!("note {i}")).await;
    }
    let entry = wait_list_entry(&b, &private, "3 unread", "e.unread === '3'").await;
    assert_eq!(entry["last"], format!("{alice}: note 3"));
    assert_eq!(entry["mention"], false);
    // Bob's socket is not in the room: Alice is alone online there.
    a.wait_for(
        "alice alone online",
        "return /^1 online$/.test(document.querySelector('#room-sub').textContent);",
        json!([]),
    )
    .await;
    // Opening it reads it: the badge goes once Bob moves on.
    open_room(&b, &private).await;
    wait_message(&b, "note 3").await;
    a.wait_for(
        "bob online in the room",
        "return /2 online/.test(document.querySelector('#room-sub').textContent);",
        json!([]),
    )
    .await;
    open_room(&b, "general").await;
    wait_list_entry(&b, &private, "no badge after reading", "e.unread === null && !e.mention").await;
    a.wait_for(
        "bob gone from the room",
        "return /^1 online$/.test(document.querySelector('#room-sub').textContent);",
        json!([]),
    )
    .await;
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rooms_and_unread_counts_reach_the_list_live() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    room_list_live(&driver, &node.base, &node.base).await;
    node.stop().await;
}

/// The same with Alice and Bob on two nodes of a three-node cluster: inbox events and activity
/// cross nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_list_is_live_across_a_cluster() {
    let driver = Driver::start().await;
    let sb = confab_tests::cluster::Sandbox::start(env!("CARGO_BIN_EXE_confab-test-node"), 3).await;
    room_list_live(&driver, &sb.bases[0], &sb.bases[1]).await;
}

/// Alice mentions Bob in a room he is a member of but has not open: the room gets the mention
/// badge and Bob a desktop notification saying who and where; `@bob` is marked in the message,
/// and reading the room clears both badges. With the bell turned off, the next mention raises the
/// badge but no notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_in_another_room_raises_a_badge_and_a_notification() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (a, b) = (driver.browser(DESKTOP.0, DESKTOP.1).await, driver.browser(DESKTOP.0, DESKTOP.1).await);
    b.record_notifications().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    sign_up(&a, &node.base, &alice).await;
    sign_up(&b, &node.base, &bob).await;
    let room = unique("standup");
    create_room(&a, &room, "", false).await;
    open_room(&b, &room).await; // joining a public room makes Bob a member
    open_room(&b, "general").await;
    b.wait_for("the bell on", "return document.querySelector('#notify').dataset.state === 'on';", json!([])).await;

    send(&a, &format!("@{bob} can you review this?")).await;
    wait_list_entry(&b, &room, "the mention badge", "e.mention && e.unread === '1'").await;
    let notes = b
        .wait_for(
            "a notification",
            "return window.__notifications.length > 0 ? window.__notifications : null;",
            json!([]),
        )
        .await;
    assert_eq!(notes[0]["title"], format!("{alice} mentioned you in {room}"));
    assert_eq!(notes[0]["body"], format!("@{bob} can you review this?"));
    assert_eq!(b.notifications().await.len(), 1, "one notification per mention");

    open_room(&b, &room).await;
    let mark = b
        .wait_for(
            "the mention marked",
            "const m = document.querySelector('#messages .msg.mentions-me .mention.me'); return m ? m.textContent : null;",
            json!([]),
        )
        .await;
    assert_eq!(mark, format!("@{bob}"));
    open_room(&b, "general").await;
    wait_list_entry(&b, &room, "both badges gone", "!e.mention && e.unread === null").await;

    // The bell off: the badge still comes, the notification does not.
    b.click("#notify").await;
    b.wait_for("the bell off", "return document.querySelector('#notify').dataset.state === 'off';", json!([])).await;
    send(&a, &format!("thanks @{bob}")).await;
    wait_list_entry(&b, &room, "the mention badge again", "e.mention").await;
    // The badge and the notification come from the same inbox event, handled together.
    assert_eq!(b.notifications().await.len(), 1, "no notification with the bell off");
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
    node.stop().await;
}

/// While Bob's connection is down, Alice adds him to a private room and mentions him there: once
/// it is back, the inbox (rejoined with `since`) and the reloaded list show the room with its
/// mention badge, without a reload of the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_catches_up_after_a_dropped_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let args = ServeArgs { public_origin: Some(vec![origin]), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let proxy = Proxy::start_on(listener, node.node.as_ref().expect("running").addr);
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let bob = unique("bob");
    sign_up(&b, &proxy.base(), &bob).await;
    open_room(&b, "general").await;

    let alice = node.user(&unique("alice")).await;
    let name = unique("offline");
    let room = alice.create_room(&name, "private").await;
    proxy.cut();
    b.wait_for("the drop", "return document.querySelector('#status').dataset.state !== 'online';", json!([])).await;
    let (status, _) = alice.post(&format!("/api/rooms/{room}/members"), json!({"username": bob})).await;
    assert_eq!(status, 204);
    let mut ws = alice.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    ws.send(json!({"type": "send", "room": room, "cid": "m1", "body": format!("welcome @{bob}")})).await;
    ws.recv_type("ack").await;
    proxy.restore();
    wait_online(&b).await;
    let entry =
        wait_list_entry(&b, &name, "the room with its badges", "e.private && e.mention && e.unread === '1'").await;
    assert_eq!(entry["last"], format!("{}: welcome @{bob}", alice.username));
    b.assert_clean_console(&["WebSocket connection", "net::ERR_"]).await;
    b.quit().await;
    node.stop().await;
}

/// A message written offline goes out once the connection is back, even if another room is open
/// by then: its room stays joined until the message is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_offline_goes_out_after_another_room_opens() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let args = ServeArgs { public_origin: Some(vec![origin]), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let proxy = Proxy::start_on(listener, node.node.as_ref().expect("running").addr);
    let driver = Driver::start().await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&b, &proxy.base(), &unique("fay")).await;
    let side = unique("side");
    create_room(&b, &side, "", false).await;
    open_room(&b, "general").await;

    proxy.cut();
    b.wait_for("the drop", "return document.querySelector('#status').dataset.state !== 'online';", json!([])).await;
    send(&b, "written offline in general").await;
    b.wait_visible("#messages .msg.pending").await;
    b.exec(
        "[...document.querySelectorAll('#rooms .room')].find((x) => x.querySelector('.room-name').textContent === arguments[0]).click();",
        json!([side]),
    )
    .await;
    b.wait_for(
        "the other room",
        "return document.querySelector('#room-title').textContent === arguments[0];",
        json!([side]),
    )
    .await;
    proxy.restore();
    wait_online(&b).await;

    let reader = node.user(&unique("gil")).await;
    let general = reader.room_id("general").await;
    eventually("the message stored once", || {
        let reader = reader.clone();
        async move {
            let (_, hist) = reader.get(&format!("/api/rooms/{general}/messages?limit=100")).await;
            let n = hist["messages"].as_array()?.iter().filter(|m| m["body"] == "written offline in general").count();
            (n == 1).then_some(())
        }
    })
    .await;
    open_room(&b, "general").await;
    wait_message(&b, "written offline in general").await;
    assert_eq!(b.exec("return document.querySelectorAll('#messages .msg.pending').length;", json!([])).await, 0);
    b.assert_clean_console(&["WebSocket connection", "net::ERR_"]).await;
    b.quit().await;
    node.stop().await;
}
