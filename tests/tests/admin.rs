//! `confab admin`: create an admin, reset a password, set a role, against a real database.

use confab_tests::client::login;
use confab_tests::process::NodeProcess;
use confab_tests::{TestDb, unique};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

fn admin(db: &TestDb, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(db.dir.path())
        .arg("--database-url")
        .arg(&db.url)
        .output()
        .expect("run confab admin");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn password_in(text: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("password: ").or_else(|| l.split(": ").nth(1).filter(|_| l.starts_with("new password")))
        })
        .unwrap_or_else(|| panic!("no password in {text}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_admin_reset_password_and_set_role() {
    let db = TestDb::create().await;
    let name = unique("root");
    let (ok, out) = admin(&db, &["create-admin", &name]);
    assert!(ok, "{out}");
    let first = password_in(&out);
    assert_eq!(first.len(), 20);
    let (ok, out) = admin(&db, &["create-admin", &name]);
    assert!(!ok, "a second admin of the same name is refused: {out}");

    let node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let (status, v) = login(&node.base, &name, &first).await;
    assert_eq!(status, 200);
    assert_eq!(v["user"]["role"], "admin");
    let token = v["token"].as_str().unwrap().to_owned();

    let (ok, out) = admin(&db, &["reset-password", &name]);
    assert!(ok, "{out}");
    let second = password_in(&out);
    assert_ne!(first, second);
    assert_eq!(login(&node.base, &name, &first).await.0, 401);
    assert_eq!(login(&node.base, &name, &second).await.0, 200);
    let me = reqwest::Client::new().get(format!("{}/api/me", node.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 401, "the reset ended the earlier login");

    let (ok, out) = admin(&db, &["set-role", &name, "moderator"]);
    assert!(ok, "{out}");
    assert_eq!(login(&node.base, &name, &second).await.1["user"]["role"], "moderator");
    let (ok, _) = admin(&db, &["set-role", &name, "emperor"]);
    assert!(!ok);
    let (ok, _) = admin(&db, &["reset-password", "nobody_here"]);
    assert!(!ok);
}
