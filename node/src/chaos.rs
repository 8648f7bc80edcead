//! `confab chaos`: asks a node started with `--enable-chaos` to kill actors, as an admin.

use crate::bench::net::http;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::net::SocketAddr;

#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// What to kill: room (needs --room), session (needs --user), writer, or every actor of a
    /// kind on the node: rooms, sessions.
    pub kill: String,
    /// The node's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub node: SocketAddr,
    #[arg(long)]
    pub room: Option<i64>,
    /// A user id: one of their sessions on the node is killed.
    #[arg(long)]
    pub user: Option<i64>,
    /// An admin account (see `confab admin create-admin`).
    #[arg(long, env = "CONFAB_CHAOS_USERNAME")]
    pub username: String,
    #[arg(long, env = "CONFAB_CHAOS_PASSWORD")]
    pub password: String,
}

pub fn main(args: ChaosArgs) -> std::process::ExitCode {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match rt.block_on(run(args)) {
        Ok(answer) => {
            println!("{answer}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confab chaos: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: ChaosArgs) -> anyhow::Result<Value> {
    let creds = json!({"username": a.username, "password": a.password}).to_string();
    let (status, body) = http(a.node, "POST", "/api/auth/login", None, Some(&creds)).await?;
    if status != 200 {
        bail!("login as {}: HTTP {status}: {body}", a.username);
    }
    let login: Value = serde_json::from_str(&body)?;
    let token = login["token"].as_str().context("no token in the login answer")?;
    let req = json!({"kill": a.kill, "room": a.room, "user": a.user}).to_string();
    let (status, body) = http(a.node, "POST", "/api/chaos", Some(token), Some(&req)).await?;
    if status != 200 {
        bail!("HTTP {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}
