//! The browser app seen as a user sees it: sign up, open a room, send, read the message list.
//! Every helper takes the page's base URL, so one test can put two users on two different nodes.

use crate::browser::Browser;
use serde_json::{Value, json};

/// The password every browser test user gets.
pub const PASSWORD: &str = "correct horse battery";

/// A message as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub seq: u64,
    pub from: String,
    pub body: String,
    pub own: bool,
}

/// Opens `base` and creates the account `username` through the sign-in form.
pub async fn sign_up(b: &Browser, base: &str, username: &str) {
    b.goto(base).await;
    b.type_into("#username", username).await;
    b.type_into("#password", PASSWORD).await;
    b.click("#register").await;
    wait_online(b).await;
}

/// Waits until the page's socket says `online`.
pub async fn wait_online(b: &Browser) {
    b.wait_for(
        "the app to be online",
        "return document.querySelector('#status')?.dataset.state === 'online';",
        json!([]),
    )
    .await;
}

/// Clicks the room named `name` in the sidebar and waits until its history is shown and joined.
pub async fn open_room(b: &Browser, name: &str) {
    let script = "const b = [...document.querySelectorAll('#rooms .room')].find((x) => \
                  x.querySelector('.room-name').textContent === arguments[0]); if (b) b.click(); return !!b;";
    b.wait_for(&format!("room {name} in the list"), script, json!([name])).await;
    b.wait_for(
        &format!("room {name} to open"),
        "return document.querySelector('#room-title').textContent === arguments[0] && \
         document.querySelector('#older').textContent !== 'Loading…' && /online/.test(document.querySelector('#room-sub').textContent);",
        json!([name]),
    )
    .await;
}

/// Types `body` in the composer and presses Enter.
pub async fn send(b: &Browser, body: &str) {
    b.type_into("#composer", &format!("{body}\u{E007}")).await;
}

/// The messages the open room shows, in page order (pending sends have no seq and are left out).
pub async fn shown(b: &Browser) -> Vec<Shown> {
    let v = b
        .exec(
            "return [...document.querySelectorAll('#messages .msg[data-seq]')].map((li) => ({ \
               seq: Number(li.dataset.seq), from: li.querySelector('.from').textContent, \
               body: li.querySelector('.body').textContent, own: li.classList.contains('own') }));",
            json!([]),
        )
        .await;
    v.as_array()
        .expect("a list")
        .iter()
        .map(|m| Shown {
            seq: m["seq"].as_u64().expect("seq"),
            from: m["from"].as_str().unwrap_or_default().to_owned(),
            body: m["body"].as_str().unwrap_or_default().to_owned(),
            own: m["own"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// Waits until the open room shows a message whose body is `body`, and returns it.
pub async fn wait_message(b: &Browser, body: &str) -> Value {
    b.wait_for(
        &format!("message {body:?} to show"),
        "const li = [...document.querySelectorAll('#messages .msg[data-seq]')].find((x) => \
           x.querySelector('.body').textContent === arguments[0]); \
         return li ? { seq: Number(li.dataset.seq), own: li.classList.contains('own') } : null;",
        json!([body]),
    )
    .await
}

/// Clicks one of the buttons of message `seq` (`reply-btn`, `act-edit`, `act-delete`), as a
/// tap on it would (they show on hover).
pub async fn message_action(b: &Browser, seq: u64, action: &str) {
    b.wait_for(
        &format!("the {action} button of message {seq}"),
        "const btn = document.querySelector(`#messages > .msg[data-seq=\"${arguments[0]}\"] .${arguments[1]}`); \
         if (!btn || btn.hidden) return false; btn.click(); return true;",
        json!([seq, action]),
    )
    .await;
}

/// Answers the confirmation dialog with its action button.
pub async fn confirm(b: &Browser) {
    b.click("#confirm-yes").await;
    b.wait_for("the confirmation to close", "return !document.querySelector('#confirm-dialog').open;", json!([])).await;
}

/// The names in the room list, in list order.
pub async fn room_names(b: &Browser) -> Vec<String> {
    let v = b
        .exec("return [...document.querySelectorAll('#rooms .room .room-name')].map((n) => n.textContent);", json!([]))
        .await;
    v.as_array().expect("a list").iter().map(|n| n.as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until the room list shows (`shown`) or no longer shows a room named `name`.
pub async fn wait_listed(b: &Browser, name: &str, shown: bool) {
    b.wait_for(
        &format!("room {name} {} the list", if shown { "in" } else { "gone from" }),
        "return [...document.querySelectorAll('#rooms .room .room-name')].some((n) => n.textContent === arguments[0]) === arguments[1];",
        json!([name, shown]),
    )
    .await;
}

/// Creates a room through the new-room dialog and waits until it is open and joined.
pub async fn create_room(b: &Browser, name: &str, description: &str, private: bool) {
    b.click("#new-room").await;
    b.type_into("#room-name", name).await;
    if !description.is_empty() {
        b.type_into("#room-desc", description).await;
    }
    if private {
        b.click("#room-form input[name=visibility][value=private]").await;
    }
    b.click("#room-create").await;
    b.wait_for(
        &format!("room {name} to open"),
        "return document.querySelector('#room-title').textContent === arguments[0] && \
         /online/.test(document.querySelector('#room-sub').textContent);",
        json!([name]),
    )
    .await;
}

/// Opens the room info panel (if it is not open) and waits for its member list.
pub async fn open_info(b: &Browser) {
    let open = b.exec("return !document.querySelector('#info').hidden;", json!([])).await;
    if open != true {
        b.click("#open-info").await;
    }
    b.wait_visible("#info-members .member").await;
}

/// Waits until the open room shows a system line containing `text`, and returns the line.
pub async fn wait_event_line(b: &Browser, text: &str) -> String {
    let v = b
        .wait_for(
            &format!("a line saying {text:?}"),
            "const li = [...document.querySelectorAll('#messages > .event')].find((x) => x.textContent.includes(arguments[0])); \
             return li ? li.textContent : null;",
            json!([text]),
        )
        .await;
    v.as_str().unwrap_or_default().to_owned()
}

/// Waits until the room list's entry for `name` satisfies `check`, a JS expression over `e`:
/// `{unread, mention, last, private}` (its unread badge's text or null, whether it has the
/// mention badge, its last-message preview, whether it is tagged private), and returns `e`.
pub async fn wait_list_entry(b: &Browser, name: &str, what: &str, check: &str) -> Value {
    wait_entry(b, "#rooms", name, what, check).await
}

/// `wait_list_entry` for the direct messages' list (`name`: the other people's names), where
/// `e` also has `online` (the dot's state: true, false, or null when unknown).
pub async fn wait_dm_entry(b: &Browser, name: &str, what: &str, check: &str) -> Value {
    wait_entry(b, "#dms", name, what, check).await
}

async fn wait_entry(b: &Browser, list: &str, name: &str, what: &str, check: &str) -> Value {
    b.wait_for(
        &format!("{list} entry {name}: {what}"),
        &format!(
            "const r = [...document.querySelectorAll(`${{arguments[1]}} .room`)].find((x) => x.querySelector('.room-name').textContent === arguments[0]); \
             if (!r) return null; \
             const dot = r.querySelector('.room-top .dot'); \
             const e = {{ unread: r.querySelector('.unread-badge')?.textContent ?? null, mention: !!r.querySelector('.mention-badge'), \
               last: r.querySelector('.room-last').textContent, private: r.querySelector('.room-top .tag')?.textContent === 'private', \
               online: dot && dot.dataset.says ? dot.dataset.says === 'online' : null }}; \
             return ({check}) ? e : null;"
        ),
        json!([name, list]),
    )
    .await
}

/// Clicks the direct message named `name` in the sidebar and waits until its history is shown.
pub async fn open_dm(b: &Browser, name: &str) {
    let script = "const b = [...document.querySelectorAll('#dms .room')].find((x) => \
                  x.querySelector('.room-name').textContent === arguments[0]); if (b) b.click(); return !!b;";
    b.wait_for(&format!("conversation {name} in the list"), script, json!([name])).await;
    wait_dm_open(b, name).await;
}

/// Waits until the open conversation's header names `name` and its history is shown.
pub async fn wait_dm_open(b: &Browser, name: &str) {
    b.wait_for(
        &format!("conversation {name} to open"),
        "return document.querySelector('#room-title').textContent === arguments[0] && \
         document.querySelector('#older').textContent !== 'Loading…';",
        json!([name]),
    )
    .await;
}

/// Opens a direct message with `username` through the "new message" dialog's people search
/// (typing `query`), and waits until it is open (named `title`).
pub async fn new_dm(b: &Browser, query: &str, username: &str, title: &str) {
    b.click("#new-dm").await;
    b.type_into("#dm-search", query).await;
    b.click(&format!("#dm-people .person[data-username=\"{username}\"]")).await;
    b.wait_for(
        "the person chosen",
        "return document.querySelector(`#dm-people .person[data-username=\"${arguments[0]}\"]`)?.getAttribute('aria-pressed') === 'true' \
           && !document.querySelector('#dm-start').disabled;",
        json!([username]),
    )
    .await;
    b.click("#dm-start").await;
    wait_dm_open(b, title).await;
}

/// Opens the profile card of the sender of message `seq` (a click on their name).
pub async fn open_profile_of_sender(b: &Browser, seq: u64) {
    b.click(&format!("#messages > .msg[data-seq=\"{seq}\"] .meta .from")).await;
    b.wait_for("the profile card", "return document.querySelector('#profile-dialog').open;", json!([])).await;
}
