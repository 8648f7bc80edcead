//! TLS: the node serves HTTPS and WebSocket upgrades over TLS, with HSTS and Secure cookies.
//! Uses the machine's `openssl` to make a throwaway certificate and `curl` as the client.

use confab::ServeArgs;
use confab_tests::{NodeOpts, TestNode, unique};
use std::process::Command;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-sk", "--max-time", "3"]).args(args).output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_with_hsts_and_secure_cookies() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs")
        .status
        .success();
    assert!(ok, "openssl made a certificate");
    let args = ServeArgs { tls_cert: Some(cert), tls_key: Some(key), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let base = node.base.replace("http://", "https://");

    let health = curl(&["-i", &format!("{base}/healthz")]);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.to_lowercase().contains("strict-transport-security: max-age="), "{health}");

    let name = unique("tls");
    let body = format!(r#"{{"username":"{name}","password":"correct horse"}}"#);
    let reg = curl(&["-i", "-H", "content-type: application/json", "-d", &body, &format!("{base}/api/auth/register")]);
    assert!(reg.starts_with("HTTP/1.1 201"), "{reg}");
    let cookies: Vec<&str> = reg.lines().filter(|l| l.to_lowercase().starts_with("set-cookie:")).collect();
    assert_eq!(cookies.len(), 3, "{reg}");
    assert!(cookies.iter().all(|c| c.contains("; Secure") && c.contains("SameSite=Strict")), "{cookies:?}");
    let token = reg.split("\"token\":\"").nth(1).and_then(|t| t.split('"').next()).expect("token");

    let upgrade = curl(&[
        "-i",
        "-N",
        "--http1.1",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{base}/ws"),
    ]);
    assert!(upgrade.starts_with("HTTP/1.1 101"), "{upgrade}");
    assert!(upgrade.contains("\"type\":\"hello\""), "the hello frame arrives over TLS: {upgrade}");

    // Plain HTTP on the TLS port is refused.
    let plain =
        Command::new("curl").args(["-s", "--max-time", "3", &format!("{}/healthz", node.base)]).output().unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));
    node.stop().await;
}
