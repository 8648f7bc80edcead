//! The REST calls the benchmark needs: register (or log in), create a room, read a JSON resource.

use super::net::http;
use anyhow::{anyhow, bail};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// Registers `username` (or logs in when it is taken) and returns a bearer token.
pub(crate) async fn user_token(addr: SocketAddr, username: &str, password: &str) -> anyhow::Result<String> {
    let creds = json!({"username": username, "password": password}).to_string();
    let (status, body) = http(addr, "POST", "/api/auth/register", None, Some(&creds)).await?;
    let (status, body) = match status {
        201 | 200 => (status, body),
        409 => http(addr, "POST", "/api/auth/login", None, Some(&creds)).await?,
        _ => bail!("register {username}: HTTP {status}: {body}"),
    };
    if !(200..300).contains(&status) {
        bail!("login {username}: HTTP {status}: {body}");
    }
    let v: Value = serde_json::from_str(&body)?;
    v.get("token").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| anyhow!("no token in {body}"))
}

/// Creates a public room; returns its id.
pub(crate) async fn create_room(addr: SocketAddr, token: &str, name: &str) -> anyhow::Result<i64> {
    let req = json!({"name": name, "visibility": "public"}).to_string();
    let (status, body) = http(addr, "POST", "/api/rooms", Some(token), Some(&req)).await?;
    if status != 201 {
        bail!("create room {name}: HTTP {status}: {body}");
    }
    let v: Value = serde_json::from_str(&body)?;
    v.get("id").and_then(Value::as_i64).ok_or_else(|| anyhow!("no room id in {body}"))
}

/// `GET path` with the bearer `token`; the JSON body of a 200.
pub(crate) async fn get_json(addr: SocketAddr, token: &str, path: &str) -> anyhow::Result<Value> {
    let (status, body) = http(addr, "GET", path, Some(token), None).await?;
    if status != 200 {
        bail!("GET {path} on {addr}: HTTP {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}
