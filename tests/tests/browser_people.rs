//! The browser app's people features in real headless Chromium (as `browser.rs`), against a real
//! in-process node: opening a direct message from people search and answering it live, blocking
//! someone from their profile (their messages collapsed, a send in the conversation refused, all
//! undone by unblocking), and a search result that opens an older message with its neighbours,
//! the room staying live after it. Without chromedriver these tests fail.

use confab_tests::browser::Driver;
use confab_tests::chat_page::{
    confirm, new_dm, open_dm, open_profile_of_sender, open_room, send, shown, sign_up, wait_dm_entry, wait_message,
};
use confab_tests::{NodeOpts, TestNode, unique};
use serde_json::json;

const DESKTOP: (u32, u32) = (1280, 800);

/// Whether the open room shows message `body` collapsed as a blocked user's (`Some(true)`),
/// in full (`Some(false)`), or not at all (`None`), as a JS expression's answer.
const COLLAPSED: &str = "const li = [...document.querySelectorAll('#messages > .msg[data-seq]')].find((x) => x.dataset.seq == arguments[0]); \
     if (!li) return null; return li.classList.contains('blocked-msg') === arguments[1] ? li.querySelector('.body').textContent : null;";

/// Alice sets a display name, finds Bob in the "new message" dialog's people search and writes
/// to him; Bob, looking at another room, sees the conversation appear in his direct messages,
/// named by her display name, with an unread badge; he opens it, reads it, answers, and she sees
/// the answer live. Then she starts a group with Bob and Carol, which reaches Bob's list live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_opened_from_people_search_reaches_the_other_live() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, &node.base, &alice).await;
    sign_up(&b, &node.base, &bob).await;
    open_room(&b, "general").await;

    // Alice's own profile: a display name.
    a.click("#me").await;
    a.wait_visible("#me-form").await;
    a.clear("#me-display").await;
    a.type_into("#me-display", "Alice Liddell").await;
    a.click("#me-save").await;
    a.wait_for("the profile saved", "return document.querySelector('#me-saved').textContent === 'Saved.';", json!([]))
        .await;
    a.click("#profile-close").await;

    // People search: a prefix of Bob's username finds him.
    new_dm(&a, &bob[..bob.len() - 2], &bob, &bob).await;
    let listed = a
        .exec("return [...document.querySelectorAll('#rooms .room-name')].map((n) => n.textContent);", json!([]))
        .await;
    assert!(
        !listed.as_array().unwrap().iter().any(|n| n == &json!(bob)),
        "a direct message is not in the room list: {listed}"
    );
    send(&a, "hello Bob, just between us").await;
    let sent = wait_message(&a, "hello Bob, just between us").await;
    assert_eq!(sent["own"], true);

    // Bob's list: the conversation, named by her display name, one unread message.
    wait_dm_entry(&b, "Alice Liddell", "one unread message", "e.unread === '1'").await;
    assert_eq!(b.text("#room-title").await, "general", "the open room stays open");
    b.screenshot("dm-unread-in-the-list").await;
    open_dm(&b, "Alice Liddell").await;
    let got = wait_message(&b, "hello Bob, just between us").await;
    assert_eq!(got["own"], false);
    assert_eq!(got["seq"], sent["seq"]);
    wait_dm_entry(&b, "Alice Liddell", "read: no badge", "e.unread === null").await;
    send(&b, "hi Alice, got it").await;
    wait_message(&a, "hi Alice, got it").await;
    let on_a = shown(&a).await;
    let bodies: Vec<&str> = on_a.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["hello Bob, just between us", "hi Alice, got it"], "the conversation, in order, once each");
    // Her list names him (no display name: his username).
    wait_dm_entry(&a, &bob, "his answer as the preview", "e.last.includes('hi Alice, got it')").await;
    a.screenshot("dm-conversation").await;

    // A group: Bob and Carol, chosen together; Bob's list gets it live, named by the two others.
    let carol = node.user(&unique("carol")).await;
    a.click("#new-dm").await;
    for who in [&bob, &carol.username] {
        a.clear("#dm-search").await;
        a.type_into("#dm-search", who).await;
        a.click(&format!("#dm-people .person[data-username=\"{who}\"]")).await;
    }
    let start = a.text("#dm-start").await;
    assert_eq!(start, "Start group (3 people)");
    a.click("#dm-start").await;
    let group = format!("{bob}, {}", carol.username);
    a.wait_for(
        "the group open",
        "return document.querySelector('#room-title').textContent === arguments[0] && /3 people/.test(document.querySelector('#room-sub').textContent);",
        json!([group]),
    )
    .await;
    send(&a, "hello you two").await;
    wait_dm_entry(&b, &format!("Alice Liddell, {}", carol.username), "the group, one unread", "e.unread === '1'").await;
    // On a phone: the conversation, then the drawer with both lists.
    b.emulate_phone(390, 844).await;
    b.wait_visible("#open-drawer").await;
    b.screenshot("dm-phone").await;
    b.click("#open-drawer").await;
    b.wait_for(
        "the drawer open",
        "return document.querySelector('#sidebar').getBoundingClientRect().left >= 0 && !!document.querySelector('#dms .room');",
        json!([]),
    )
    .await;
    b.screenshot("dm-phone-drawer").await;
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
    node.stop().await;
}

/// Alice blocks Bob from his profile (opened from his name on a message in `general`): his
/// messages there are collapsed for her (one can still be shown on request), live ones too; in
/// their conversation a note says she blocked him and her send is refused, saying why; Bob's
/// sends there are refused too. Unblocking from her own profile's list undoes all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_collapses_messages_and_refuses_direct_messages_until_unblocked() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let alice = unique("alice");
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, &node.base, &alice).await;
    open_room(&a, "general").await;
    let bob = node.user(&unique("bob")).await;
    let general = bob.room_id("general").await;
    let mut ws = bob.ws(&node.ws_url).await;
    ws.join(general, Some(0)).await;
    ws.send(json!({"type": "send", "room": general, "cid": "g1", "body": "bob in general"})).await;
    let first = ws.recv_type("ack").await["seq"].as_u64().unwrap();
    wait_message(&a, "bob in general").await;

    // His profile, from his name: "Message" opens their conversation.
    open_profile_of_sender(&a, first).await;
    assert_eq!(a.text("#profile-username").await, format!("@{}", bob.username));
    a.click("#profile-message").await;
    open_dm_header(&a, &bob.username).await;
    send(&a, "before the block").await;
    wait_message(&a, "before the block").await;
    let dm = a.exec("return Number(location.hash.split('/')[1]);", json!([])).await.as_i64().unwrap();

    // Block him from the conversation's header (his name opens his profile).
    a.click("#room-title .title-name").await;
    a.wait_for("the profile card", "return document.querySelector('#profile-dialog').open;", json!([])).await;
    a.click("#profile-block").await;
    confirm(&a).await;
    a.wait_for(
        "the card to offer unblocking",
        "return document.querySelector('#profile-block').textContent === 'Unblock';",
        json!([]),
    )
    .await;
    a.click("#profile-close").await;
    a.wait_visible("#dm-note").await;
    send(&a, "after the block").await;
    let why = a
        .wait_for(
            "the refused send to say why",
            "const li = document.querySelector('#messages .msg.failed'); return li ? li.querySelector('.send-error').textContent : null;",
            json!([]),
        )
        .await;
    assert!(why.as_str().unwrap().contains("You blocked"), "the refusal says why: {why}");
    assert!(a.text("#compose-error").await.contains("You blocked"));
    // His send in their conversation is refused as well (he is not told why).
    ws.join(dm, Some(0)).await;
    ws.send(json!({"type": "send", "room": dm, "cid": "d1", "body": "can you hear me"})).await;
    ws.expect_error("dm_refused").await;

    // In general his messages are collapsed, the old one and a live one.
    open_room(&a, "general").await;
    a.wait_for("his old message collapsed", COLLAPSED, json!([first, true])).await;
    ws.send(json!({"type": "send", "room": general, "cid": "g2", "body": "bob again"})).await;
    let second = ws.recv_type("ack").await["seq"].as_u64().unwrap();
    let text = a.wait_for("his live message collapsed", COLLAPSED, json!([second, true])).await;
    assert!(text.as_str().unwrap().contains("Message from a blocked user"), "{text}");
    let page = a.exec("return document.querySelector('#messages').textContent;", json!([])).await;
    assert!(!page.as_str().unwrap().contains("bob again"), "a collapsed body is not on the page");
    a.screenshot("blocked-user-collapsed").await;
    // One can be shown on request.
    a.click(&format!("#messages > .msg[data-seq=\"{second}\"] .show-blocked")).await;
    let shown_body = a.wait_for("the message shown", COLLAPSED, json!([second, false])).await;
    assert_eq!(shown_body, "bob again");

    // Unblock from her own profile's list of blocked people.
    a.click("#me").await;
    a.wait_for(
        "him in the blocked list",
        "return document.querySelector('#blocked-list').textContent.includes(arguments[0]);",
        json!([bob.username]),
    )
    .await;
    a.click("#blocked-list .unblock").await;
    a.wait_for(
        "the blocked list empty",
        "return document.querySelector('#blocked-list').childElementCount === 0 && !document.querySelector('#blocked-empty').hidden;",
        json!([]),
    )
    .await;
    a.click("#profile-close").await;
    let back = a.wait_for("his message shown again", COLLAPSED, json!([first, false])).await;
    assert_eq!(back, "bob in general");
    open_dm(&a, &bob.username).await;
    assert!(a.exec("return document.querySelector('#dm-note').hidden;", json!([])).await.as_bool().unwrap());
    // The refused text went back to the composer to edit: write anew.
    assert_eq!(a.exec("return document.querySelector('#composer').value;", json!([])).await, "after the block");
    a.clear("#composer").await;
    send(&a, "friends again").await;
    wait_message(&a, "friends again").await;
    ws.send(json!({"type": "send", "room": dm, "cid": "d2", "body": "glad to hear it"})).await;
    ws.recv_type("ack").await;
    wait_message(&a, "glad to hear it").await;
    a.assert_clean_console(&["403"]).await;
    a.quit().await;
    node.stop().await;
}

/// Waits until the open conversation's header is a button naming `name`.
async fn open_dm_header(b: &confab_tests::browser::Browser, name: &str) {
    b.wait_for(
        &format!("the conversation with {name}"),
        "return document.querySelector('#room-title .title-name')?.textContent === arguments[0] && \
         document.querySelector('#older').textContent !== 'Loading…';",
        json!([name]),
    )
    .await;
}

/// The seqs the open room shows (messages and lines), in page order.
async fn seqs(b: &confab_tests::browser::Browser) -> Vec<u64> {
    let v = b
        .exec(
            "return [...document.querySelectorAll('#messages > [data-seq]')].map((li) => Number(li.dataset.seq));",
            json!([]),
        )
        .await;
    v.as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect()
}

/// Asserts that `seqs` ascend by one: no gap, no duplicate.
fn assert_contiguous(seqs: &[u64], what: &str) {
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{what}: not one after another: {seqs:?}");
}

/// A search for a word said long ago (80 messages since, so not on screen) lists it with the
/// word marked; choosing it opens the room at that message, highlighted in view with its
/// neighbours; scrolling down loads the newer pages without a gap, and a message sent after the
/// jump still arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_result_opens_an_older_message_and_the_room_stays_live() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let bob = node.user(&unique("bob")).await;
    let name = unique("archive");
    let room = bob.create_room(&name, "public").await;
    let mut ws = bob.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    let mut bodies: Vec<String> = (1..=10).map(|i| format!("early message {i}")).collect();
    bodies.push("the aardvark left the burrow at dawn".into());
    bodies.extend((1..=80).map(|i| format!("later message {i}")));
    for chunk in bodies.chunks(40) {
        for body in chunk {
            ws.send(json!({"type": "send", "room": room, "cid": unique("c"), "body": body})).await;
        }
        for _ in chunk {
            ws.recv_type("ack").await;
        }
    }
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, &node.base, &unique("alice")).await;
    open_room(&a, &name).await; // a public room: opening it joins it, at its newest page
    wait_message(&a, "later message 80").await;
    let page = a.exec("return document.querySelector('#messages').textContent;", json!([])).await;
    assert!(!page.as_str().unwrap().contains("aardvark"), "the old message is not loaded yet");

    a.click("#open-search").await;
    a.type_into("#search-q", "aardvark").await;
    let hit = a
        .wait_for(
            "a result",
            "const r = document.querySelector('#search-results .result'); if (!r) return null; \
             return { room: r.querySelector('.result-room').textContent, from: r.querySelector('.result-from').textContent, \
               marks: [...r.querySelectorAll('mark')].map((m) => m.textContent), text: r.querySelector('.result-snippet').textContent, \
               seq: Number(r.dataset.seq) };",
            json!([]),
        )
        .await;
    assert_eq!(hit["room"], json!(name), "{hit}");
    assert_eq!(hit["from"], json!(bob.username), "{hit}");
    assert!(
        hit["marks"].as_array().unwrap().iter().any(|m| m.as_str().unwrap().eq_ignore_ascii_case("aardvark")),
        "{hit}"
    );
    assert!(hit["text"].as_str().unwrap().contains("burrow"), "{hit}");
    let target = hit["seq"].as_u64().unwrap();
    a.screenshot("search-results").await;

    a.click("#search-results .result").await;
    let found = a
        .wait_for(
            "the message highlighted in view",
            "const li = document.querySelector('#messages > .msg.found'); if (!li) return null; \
             const s = document.querySelector('#scroller').getBoundingClientRect(), r = li.getBoundingClientRect(); \
             return r.top >= s.top && r.bottom <= s.bottom ? { seq: Number(li.dataset.seq), body: li.querySelector('.body').textContent } : null;",
            json!([]),
        )
        .await;
    assert_eq!(found["seq"], json!(target));
    assert_eq!(found["body"], "the aardvark left the burrow at dawn");
    let around = seqs(&a).await;
    assert!(around.contains(&(target - 1)) && around.contains(&(target + 1)), "its neighbours: {around:?}");
    assert_contiguous(&around, "the window around it");
    let page = a.exec("return document.querySelector('#messages').textContent;", json!([])).await;
    assert!(!page.as_str().unwrap().contains("later message 80"), "the window does not reach the newest yet");
    a.screenshot("search-jump").await;

    // A message sent now arrives: scrolling down reaches it through every page in between.
    ws.send(json!({"type": "send", "room": room, "cid": "live", "body": "sent after the jump"})).await;
    ws.recv_type("ack").await;
    a.wait_for(
        "the newest messages by scrolling down",
        "const s = document.querySelector('#scroller'); s.scrollTop = s.scrollHeight; \
         return [...document.querySelectorAll('#messages .msg .body')].some((b) => b.textContent === 'sent after the jump');",
        json!([]),
    )
    .await;
    let all = seqs(&a).await;
    assert_contiguous(&all, "the room after scrolling down");
    assert!(all.contains(&target), "the found message is still there");
    // And the room is live again: the next message comes straight in, once.
    ws.send(json!({"type": "send", "room": room, "cid": "live2", "body": "and one more"})).await;
    ws.recv_type("ack").await;
    wait_message(&a, "and one more").await;
    let last = seqs(&a).await;
    assert_contiguous(&last, "the room after a live message");
    let shown_all = shown(&a).await;
    assert_eq!(shown_all.iter().filter(|m| m.body == "and one more").count(), 1);
    a.assert_clean_console(&[]).await;
    a.quit().await;
    node.stop().await;
}
