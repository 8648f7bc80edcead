//! Moderation in real headless Chromium (as `browser.rs`): an admin bans a user from the admin
//! panel (`/admin`) and the user's open app shows the ban instead of reconnecting; a broadcast
//! sent from the panel on one node of a 2-node cluster appears as a banner for a user signed in
//! on the other, and stays dismissed; a user reports a message from its Report action and the
//! admin sees it in the panel's moderation queue. Without chromedriver these tests fail.

use confab_schemas::Role;
use confab_tests::browser::{Browser, Driver};
use confab_tests::chat_page::{message_action, open_room, send, sign_up, wait_message, wait_online};
use confab_tests::{NodeOpts, TestNode, unique};
use serde_json::json;

const DESKTOP: (u32, u32) = (1280, 800);

/// Reloads the admin's app (its `me` now says admin), follows the Admin link and waits for the
/// panel's users section.
async fn open_panel(a: &Browser) {
    a.refresh().await;
    wait_online(a).await;
    a.wait_visible("#admin-link").await;
    a.click("#admin-link").await;
    a.wait_for(
        "the admin panel",
        "return location.pathname === '/admin' && !document.querySelector('#admin-main').hidden && \
         document.querySelectorAll('#users-body tr').length > 0;",
        json!([]),
    )
    .await;
}

/// Makes `username` a site admin (as the CLI would).
async fn make_admin(node: &TestNode, username: &str) {
    let store = node.system().store();
    let id = store.user_by_name(username).await.unwrap().expect("the user").id;
    store.set_user_role(id, Role::Admin).await.unwrap();
}

/// Opens one of the panel's tabs.
async fn tab(a: &Browser, name: &str) {
    a.click(&format!("#admin-tabs [data-tab=\"{name}\"]")).await;
    a.wait_for(
        &format!("the {name} tab"),
        "return !document.querySelector(`#tab-${arguments[0]}`).hidden;",
        json!([name]),
    )
    .await;
}

/// Alice is an admin; Bob, signed in and looking at `general`, is banned by her from the panel's
/// users section with a reason. Bob's app shows a screen saying his account is banned, with the
/// reason, and stops reconnecting; the panel shows him banned, the audit log has the ban, and
/// statistics count one banned account and this node's connections. Unbanning from the panel
/// lets him sign in again; a kick shows too, and his app reconnects when he asks; the panel
/// itself refuses him.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_bans_a_user_from_the_panel_and_the_users_open_app_shows_it() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, &node.base, &alice).await;
    sign_up(&b, &node.base, &bob).await;
    open_room(&b, "general").await;
    assert!(b.exec("return document.querySelector('#admin-link').hidden;", json!([])).await == json!(true));
    make_admin(&node, &alice).await;

    open_panel(&a).await;
    a.type_into("#users-q", &bob).await;
    a.click("#users-form button[type=submit]").await;
    let row = format!("#users-body tr[data-username=\"{bob}\"]");
    a.wait_visible(&row).await;
    a.wait_visible(&format!("{row} .act-ban")).await;
    a.click(&format!("{row} .act-ban")).await;
    a.wait_visible("#act-reason").await;
    a.type_into("#act-reason", "spamming the general room").await;
    a.screenshot("admin-ban-dialog").await;
    a.click("#act-ok").await;
    a.wait_for(
        "Bob shown banned in the panel",
        "const r = document.querySelector(arguments[0]); return !!r && /Banned/.test(r.querySelector('.state').textContent);",
        json!([row]),
    )
    .await;

    // Bob's open app: the ban, with its reason, not a reconnect loop.
    b.wait_for(
        "the ban shown in Bob's app",
        "const e = document.querySelector('#ended'); return !e.hidden && e.dataset.why === 'banned' && \
         /spamming the general room/.test(e.textContent);",
        json!([]),
    )
    .await;
    b.screenshot("banned-user-app").await;
    assert!(b.exec("return document.querySelector('#ended-again').hidden;", json!([])).await == json!(true));

    // The audit log and the statistics.
    tab(&a, "audit").await;
    a.wait_for(
        "the ban in the audit log",
        "return [...document.querySelectorAll('#audit-body tr[data-action=\"admin.ban\"]')].some((tr) => \
           tr.querySelector('.target').textContent === arguments[0] && tr.querySelector('.actor').textContent === arguments[1]);",
        json!([bob, alice]),
    )
    .await;
    a.type_into("#audit-action", "admin.unban").await;
    a.click("#audit-form button[type=submit]").await;
    a.wait_for(
        "the filtered audit log (empty)",
        "return document.querySelectorAll('#audit-body tr').length === 0;",
        json!([]),
    )
    .await;
    tab(&a, "stats").await;
    a.wait_for(
        "statistics with a banned account and this node's connections",
        "const banned = document.querySelector('#stats-site [data-stat=\"banned\"] dd'); \
         const rows = document.querySelectorAll('#stats-nodes tr'); \
         return !!banned && Number(banned.textContent) >= 1 && rows.length === 1 && \
           Number(rows[0].querySelector('.connections').textContent) >= 1;",
        json!([]),
    )
    .await;
    a.screenshot("admin-stats").await;

    // Unban from the panel: Bob signs in again.
    tab(&a, "users").await;
    a.wait_visible(&format!("{row} .act-unban")).await;
    a.click(&format!("{row} .act-unban")).await;
    a.click("#act-ok").await;
    a.wait_visible(&format!("{row} .act-ban")).await;
    b.click("#ended-out").await;
    b.wait_visible("#username").await;
    b.clear("#username").await;
    b.type_into("#username", &bob).await;
    b.type_into("#password", confab_tests::chat_page::PASSWORD).await;
    b.click("#login").await;
    b.wait_for("Bob signed in again", "return !document.querySelector('#app').hidden;", json!([])).await;
    wait_online(&b).await;

    // A kick: Bob's app says so, and reconnects when he asks. (The kick's revocation row, which
    // every node polls about once a second, may close a socket that reconnected before the poll
    // too: then the screen shows again, and he asks again.)
    a.click(&format!("{row} .act-kick")).await;
    a.wait_visible("#act-ok").await;
    a.click("#act-ok").await;
    b.wait_for(
        "the kick shown in Bob's app",
        "const e = document.querySelector('#ended'); return !e.hidden && e.dataset.why === 'kicked';",
        json!([]),
    )
    .await;
    b.screenshot("kicked-user-app").await;
    b.wait_for(
        "Bob back online after Reconnect",
        "const e = document.querySelector('#ended'); if (!e.hidden) { document.querySelector('#ended-again').click(); return false; } \
         return document.querySelector('#status').dataset.state === 'online';",
        json!([]),
    )
    .await;
    // The panel refuses a user who is not an admin (the routes would anyway).
    b.goto(&format!("{}/admin", node.base)).await;
    b.wait_for(
        "the panel refusing Bob",
        "const p = document.querySelector('#admin-refused'); return !p.hidden && /admins only/.test(p.textContent) && \
         document.querySelector('#admin-main').hidden;",
        json!([]),
    )
    .await;
    a.assert_clean_console(&[]).await;
    b.assert_clean_console(&["403", "banned"]).await;
    a.quit().await;
    b.quit().await;
    node.stop().await;
}

/// Bob reports Carol's message in `general` from its Report action, with a reason; Alice, an
/// admin, finds the report in the panel's moderation queue (with the message and the reason)
/// and dismisses it. Carol's private room is in the panel's rooms tab, found by its name with its
/// owner, and Alice deletes it there with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_message_shows_in_the_admin_queue_and_rooms_are_listed() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (alice, bob, carol) = (unique("alice"), unique("bob"), unique("carol"));
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let c = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, &node.base, &alice).await;
    sign_up(&b, &node.base, &bob).await;
    sign_up(&c, &node.base, &carol).await;
    open_room(&b, "general").await;
    open_room(&c, "general").await;
    let body = format!("buy cheap watches {}", unique("w"));
    send(&c, &body).await;
    let m = wait_message(&b, &body).await;
    let seq = m["seq"].as_u64().expect("seq");
    // No Report action on one's own message.
    let own = c
        .exec(
            "return !!document.querySelector(`#messages > .msg[data-seq=\"${arguments[0]}\"] .act-report`);",
            json!([seq]),
        )
        .await;
    assert_eq!(own, json!(false), "no report button on one's own message");
    message_action(&b, seq, "act-report").await;
    b.wait_visible("#report-reason").await;
    b.type_into("#report-reason", "advertising").await;
    b.screenshot("report-dialog").await;
    b.click("#report-send").await;
    b.wait_for(
        "the report sent",
        "return !document.querySelector('#report-dialog').open && /Reported/.test(document.querySelector('#toast')?.textContent ?? '');",
        json!([]),
    )
    .await;

    make_admin(&node, &alice).await;
    open_panel(&a).await;
    tab(&a, "queue").await;
    let item = a
        .wait_for(
            "the report in the admin queue",
            "const li = [...document.querySelectorAll('#queue-list .queue-item[data-kind=\"report\"]')].find((x) => \
               x.textContent.includes(arguments[0]) && x.textContent.includes('advertising')); \
             if (li) return li.dataset.item; \
             if (!(Date.now() - (window.lastRefresh ?? 0) < 1000)) { window.lastRefresh = Date.now(); document.querySelector('#queue-refresh').click(); } \
             return null;",
            json!([body]),
        )
        .await;
    a.screenshot("admin-queue").await;
    a.click(&format!("#queue-list .queue-item[data-item=\"{}\"] .q-dismiss", item.as_str().unwrap_or_default())).await;
    a.wait_for(
        "the report dismissed",
        "const li = document.querySelector(`#queue-list .queue-item[data-item=\"${arguments[0]}\"]`); return !!li && li.dataset.status === 'dismissed';",
        json!([item]),
    )
    .await;

    // Carol's private room is in the panel's rooms (searched by name), with its owner; Alice
    // deletes it with a reason.
    let secret = unique("hideout");
    confab_tests::chat_page::create_room(&c, &secret, "", true).await;
    tab(&a, "rooms").await;
    a.type_into("#rooms-q", &secret).await;
    a.click("#rooms-form button[type=submit]").await;
    let row = a
        .wait_for(
            "the private room listed",
            "const tr = [...document.querySelectorAll('#rooms-body tr')].find((x) => x.querySelector('.rname')?.textContent === '#' + arguments[0]); \
             return tr ? [tr.dataset.visibility, tr.querySelector('.owner').textContent] : null;",
            json!([secret]),
        )
        .await;
    assert_eq!(row, json!(["private", carol]));
    a.screenshot("admin-rooms").await;
    a.click("#rooms-body .act-delete-room").await;
    a.wait_visible("#act-reason").await;
    a.type_into("#act-reason", "a hideout for spam").await;
    a.click("#act-ok").await;
    a.wait_for(
        "the room gone from the list",
        "return document.querySelectorAll('#rooms-body tr').length === 0;",
        json!([]),
    )
    .await;
    for page in [&a, &b, &c] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
    c.quit().await;
    node.stop().await;
}

/// A 2-node cluster: Alice, an admin signed in on node 0, sends an announcement from the panel;
/// Bob, signed in on node 1, sees it as a banner at once; he dismisses it, and after a reload it
/// stays dismissed. The panel's statistics list both nodes, each with its connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_banner_reaches_a_user_on_another_node() {
    let driver = Driver::start().await;
    let sb = confab_tests::cluster::Sandbox::start(env!("CARGO_BIN_EXE_confab-test-node"), 2).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let a = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let b = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&a, &sb.bases[0], &alice).await;
    sign_up(&b, &sb.bases[1], &bob).await;
    sb.make_admin(&alice).await;
    open_panel(&a).await;

    tab(&a, "stats").await;
    a.wait_for(
        "both nodes in the statistics, each with a connection",
        "const rows = [...document.querySelectorAll('#stats-nodes tr')]; return rows.length === 2 && \
           rows.every((r) => Number(r.querySelector('.connections').textContent) >= 1);",
        json!([]),
    )
    .await;
    a.screenshot("admin-stats-cluster").await;

    let text = format!("Maintenance tonight at 22:00 {}", unique("m"));
    tab(&a, "broadcast").await;
    a.type_into("#broadcast-body", &text).await;
    a.click("#broadcast-send").await;
    a.wait_for("the broadcast sent", "return !document.querySelector('#broadcast-done').hidden;", json!([])).await;

    let banner = "const d = [...document.querySelectorAll('#broadcasts .broadcast')].find((x) => \
                  x.querySelector('.broadcast-body').textContent === arguments[0]); return d ? d.dataset.broadcast : null;";
    b.wait_for("the banner on node 1", banner, json!([text])).await;
    b.screenshot("broadcast-banner").await;
    b.click("#broadcasts .broadcast-dismiss").await;
    b.wait_for("the banner gone", "return document.querySelector('#broadcasts').hidden;", json!([])).await;
    b.wait_for(
        "the dismissal stored",
        "fetch('/api/broadcasts', { credentials: 'same-origin' }).then((r) => r.json()).then((j) => { window.listed = j.broadcasts.length; }); \
         return window.listed === 0;",
        json!([]),
    )
    .await;
    b.refresh().await;
    wait_online(&b).await;
    // After the reload (GET /api/broadcasts has answered once online): still dismissed.
    open_room(&b, "general").await;
    let again = b.exec(banner, json!([text])).await;
    assert_eq!(again, json!(null), "a dismissed announcement stays dismissed");
    for page in [&a, &b] {
        page.assert_clean_console(&[]).await;
    }
    a.quit().await;
    b.quit().await;
}

/// Clicks `button` (a class) on the member `name` of the open room info panel.
async fn member_button(b: &Browser, name: &str, button: &str) {
    b.wait_for(
        &format!("the {button} button of {name}"),
        "const li = [...document.querySelectorAll('#info-members .member')].find((x) => x.querySelector('.name')?.textContent === arguments[0]); \
         const btn = li?.querySelector('.' + arguments[1]); if (!btn || btn.disabled) return false; btn.click(); return true;",
        json!([name, button]),
    )
    .await;
}

/// Decides the first open item of `kind` in the room info's queue whose text has `text`.
async fn decide(b: &Browser, kind: &str, text: &str, action: &str) {
    b.wait_for(
        &format!("a {kind} item with {text:?} to {action}"),
        "const li = [...document.querySelectorAll('#staff-queue .queue-item')].find((x) => x.dataset.kind === arguments[0] && \
           x.dataset.status === 'open' && x.textContent.includes(arguments[1])); \
         const btn = li?.querySelector('.q-' + arguments[2]); if (!btn || btn.disabled) return false; btn.click(); return true;",
        json!([kind, text, action]),
    )
    .await;
}

/// Olive owns a public room; in its info panel she makes Mia a room moderator and turns
/// pre-moderation on. Pete's sends are held: his app shows each as waiting for review; Olive's
/// queue gets them live; the one she releases reaches everyone with the next seq (Pete's own
/// pending copy becomes it), the one she rejects (with a reason, through the dialog) is marked
/// rejected in Pete's app with her reason and never shows for the others; Mia's report of the
/// released one shows in Olive's queue as it is filed. Then she mutes Pete for 15 minutes with a reason, through the sanction
/// dialog, and the room's sanctions list shows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_staff_appoint_a_moderator_and_decide_held_messages() {
    let node = TestNode::start(NodeOpts::default()).await;
    let driver = Driver::start().await;
    let (olive, mia, pete) = (unique("olive"), unique("mia"), unique("pete"));
    let o = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let m = driver.browser(DESKTOP.0, DESKTOP.1).await;
    let p = driver.browser(DESKTOP.0, DESKTOP.1).await;
    sign_up(&o, &node.base, &olive).await;
    sign_up(&m, &node.base, &mia).await;
    sign_up(&p, &node.base, &pete).await;
    let room = unique("club");
    confab_tests::chat_page::create_room(&o, &room, "", false).await;
    for b in [&m, &p] {
        open_room(b, &room).await;
    }
    confab_tests::chat_page::open_info(&o).await;
    o.wait_visible("#staff-box").await;
    member_button(&o, &mia, "staff-mod").await;
    o.wait_for(
        "Mia tagged moderator",
        "const li = [...document.querySelectorAll('#info-members .member')].find((x) => x.querySelector('.name')?.textContent === arguments[0]); \
         return !!li && [...li.querySelectorAll('.tag')].some((t) => t.textContent === 'moderator');",
        json!([mia]),
    )
    .await;
    o.exec("document.querySelector('#staff-box').open = true;", json!([])).await;
    o.click("#staff-premod").await;
    o.wait_for("pre-moderation on", "return document.querySelector('#staff-premod').checked && !document.querySelector('#staff-error').textContent;", json!([]))
        .await;

    // Pete's sends are held.
    send(&p, "first, to be released").await;
    let held = "const li = [...document.querySelectorAll('#messages .msg.held')].find((x) => x.querySelector('.body').textContent === arguments[0]); \
                return li ? li.querySelector('.time').textContent : null;";
    let shown = p.wait_for("the first send held", held, json!(["first, to be released"])).await;
    assert_eq!(shown, json!("waiting for review"));
    send(&p, "second, to be rejected").await;
    p.wait_for("the second send held", held, json!(["second, to be rejected"])).await;
    p.screenshot("held-messages").await;
    o.screenshot("room-staff-queue").await;

    decide(&o, "held", "first, to be released", "release").await;
    let released = wait_message(&p, "first, to be released").await;
    assert_eq!(released["own"], true);
    let on_mia = wait_message(&m, "first, to be released").await;
    assert_eq!(on_mia["seq"], released["seq"]);
    // A reject asks a reason, which Pete reads with the rejection.
    decide(&o, "held", "second, to be rejected", "reject").await;
    o.wait_visible("#sanction-dialog").await;
    let label = o.text("#sanction-reason-label").await;
    assert!(label.contains("shown to the sender"), "{label}");
    o.exec("document.querySelector('#sanction-reason').value = arguments[0];", json!(["off topic here"])).await;
    o.click("#sanction-ok").await;
    p.wait_for(
        "the second send marked rejected, with the reason",
        "const li = [...document.querySelectorAll('#messages .msg.rejected')].find((x) => x.querySelector('.body').textContent === arguments[0]); \
         return !!li && /Rejected/.test(li.textContent) && /off topic here/i.test(li.textContent);",
        json!(["second, to be rejected"]),
    )
    .await;
    p.screenshot("rejected-message").await;
    let bodies: Vec<String> = confab_tests::chat_page::shown(&m).await.into_iter().map(|s| s.body).collect();
    assert!(!bodies.iter().any(|b| b == "second, to be rejected"), "a rejected message reaches no one: {bodies:?}");

    // Mia reports the released message: it shows in Olive's open queue at once, no reload.
    message_action(&m, on_mia["seq"].as_u64().expect("seq"), "act-report").await;
    m.wait_visible("#report-reason").await;
    m.type_into("#report-reason", "second thoughts").await;
    m.click("#report-send").await;
    o.wait_for(
        "the report in Olive's queue, live",
        "return [...document.querySelectorAll('#staff-queue .queue-item')].some((x) => x.dataset.kind === 'report' && \
           x.dataset.status === 'open' && x.textContent.includes(arguments[0]) && x.textContent.includes(arguments[1]));",
        json!(["first, to be released", "second thoughts"]),
    )
    .await;

    // Olive mutes Pete for 15 minutes with a reason, through the sanction dialog.
    member_button(&o, &pete, "staff-mute").await;
    o.wait_visible("#sanction-dialog").await;
    o.exec(
        "document.querySelector('#sanction-reason').value = arguments[0]; document.querySelector('#sanction-for').value = '15';",
        json!(["links again"]),
    )
    .await;
    o.click("#sanction-ok").await;
    o.wait_for(
        "the mute listed with its reason and end",
        "const li = [...document.querySelectorAll('#staff-sanctions .sanction')].find((x) => x.dataset.kind === 'mute'); \
         return !!li && li.textContent.includes(arguments[0]) && li.textContent.includes('until');",
        json!(["links again"]),
    )
    .await;
    o.screenshot("room-staff-mute-dialog-done").await;
    for page in [&o, &m, &p] {
        page.assert_clean_console(&[]).await;
    }
    o.quit().await;
    m.quit().await;
    p.quit().await;
    node.stop().await;
}
