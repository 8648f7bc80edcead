//! "Talk to a stranger" in the browser app, in real headless Chromium against a real in-process
//! node: two users who share an interest enter from the dialog (chips, a waiting state with how
//! many wait), are paired into a chat where each sees the other only as "Stranger" and the
//! interest they share, chat, send a voice note recorded from Chromium's fake microphone, and
//! "Next" leaves the chat (the other side is told) and waits again; "Block" (confirmed) leaves the
//! chat for good. Without chromedriver it fails.

use confab_tests::browser::{Browser, Driver, FAKE_MEDIA};
use confab_tests::chat_page::{open_room, send, shown, sign_up, wait_message};
use confab_tests::{NodeOpts, TestNode, unique};
use serde_json::json;

const DESKTOP: (u32, u32) = (1280, 800);
/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

/// Opens the dialog, adds `interest` as a chip and starts waiting.
async fn enter(b: &Browser, interest: &str) {
    b.click("#stranger-open").await;
    b.wait_visible("#stranger-dialog").await;
    b.type_into("#stranger-interest", &format!("{interest}{ENTER}")).await;
    b.wait_for("the chip", "return document.querySelectorAll('#stranger-chips .chip').length === 1;", json!([])).await;
    b.click("#stranger-start").await;
}

/// Waits until the stranger chat is open, with its bar.
async fn in_chat(b: &Browser) -> String {
    b.wait_for(
        "the stranger chat to open",
        "return document.querySelector('#room-title').textContent === 'Stranger' \
         && !document.querySelector('#stranger-bar').hidden \
         && /online/.test(document.querySelector('#room-sub').textContent);",
        json!([]),
    )
    .await;
    b.text("#stranger-shared").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_strangers_who_share_an_interest_chat_send_a_voice_note_and_move_on() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let a = driver.browser_with(DESKTOP.0, DESKTOP.1, &FAKE_MEDIA).await;
    let b = driver.browser_with(DESKTOP.0, DESKTOP.1, &FAKE_MEDIA).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    sign_up(&a, &node.base, &alice).await;
    sign_up(&b, &node.base, &bob).await;
    open_room(&a, "general").await;
    open_room(&b, "general").await;

    enter(&a, "#Cats").await;
    let waiting = a
        .wait_for(
            "the waiting state",
            "const w = document.querySelector('#stranger-waiting'); return !w.hidden && /1 person is waiting/.test(w.textContent) ? w.textContent : null;",
            json!([]),
        )
        .await;
    assert!(waiting.as_str().unwrap().contains("Looking for a stranger"), "{waiting}");
    a.screenshot("stranger-waiting").await;
    enter(&b, "cats").await;
    assert_eq!(in_chat(&a).await, "You both like: cats");
    assert_eq!(in_chat(&b).await, "You both like: cats");

    send(&a, "hello stranger").await;
    let got = wait_message(&b, "hello stranger").await;
    assert_eq!(got["own"], false);
    let on_b = shown(&b).await;
    assert!(on_b.iter().any(|m| m.body == "hello stranger" && m.from.contains("Stranger")), "{on_b:?}");
    let mine = wait_message(&a, "hello stranger").await;
    assert_eq!(mine["own"], true, "one's own message is one's own: {mine}");
    let page = b.exec("return document.body.innerText;", json!([])).await;
    assert!(!page.as_str().unwrap().contains(&alice), "Bob's page never names Alice");

    // A voice note, recorded and played as in any room.
    a.click("#record").await;
    a.wait_visible("#recorder").await;
    a.wait_for("a second recorded", "return document.querySelector('#rec-time').textContent === '0:01';", json!([]))
        .await;
    a.click("#rec-send").await;
    b.wait_for(
        "the voice note on Bob's screen",
        "return !!document.querySelector('#messages .player.voice audio');",
        json!([]),
    )
    .await;
    b.screenshot("stranger-chat").await;

    // "Next": Bob leaves and waits again; Alice is told the stranger left.
    b.click("#stranger-next").await;
    b.wait_for(
        "Bob waiting again",
        "return document.querySelector('#stranger-dialog').open && !document.querySelector('#stranger-waiting').hidden;",
        json!([]),
    )
    .await;
    a.wait_for("the stranger left", "return !document.querySelector('#stranger-gone').hidden;", json!([])).await;
    a.wait_for(
        "the line saying so",
        "return [...document.querySelectorAll('#messages li')].some((l) => /Stranger left/.test(l.textContent));",
        json!([]),
    )
    .await;
    // Alice blocks the stranger: asked first, then out of the chat (that they are never paired
    // again is `stranger.rs`'s).
    a.click("#stranger-block").await;
    a.wait_visible("#confirm-dialog").await;
    assert_eq!(a.text("#confirm-yes").await, "Block");
    a.click("#confirm-yes").await;
    a.wait_for("the chat closed", "return document.querySelector('#stranger-bar').hidden;", json!([])).await;
    let store = node.system().store();
    let ua = store.user_by_name(&alice).await.unwrap().expect("alice").id;
    assert!(store.stranger_seat(ua).await.unwrap().is_none(), "alice left the chat");
    a.assert_clean_console(&[]).await;
    b.assert_clean_console(&[]).await;
    a.quit().await;
    b.quit().await;
    node.stop().await;
}
