//! Test clients: `Api` for REST (bearer token), `Ws` for protocol v1 over tokio-tungstenite.

use crate::DEADLINE;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// `POST /api/auth/login`: the status and the JSON answer.
pub async fn login(base: &str, username: &str, password: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A logged-in user's REST client.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub user_id: i64,
    pub username: String,
}

impl Api {
    pub async fn register(base: &str, username: &str) -> Api {
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"username": username, "password": "correct horse"}))
            .send()
            .await
            .expect("register request");
        assert_eq!(resp.status(), 201, "register {username}");
        let body: Value = resp.json().await.expect("json");
        Api {
            http,
            base: base.to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
            user_id: body["user"]["id"].as_i64().expect("id"),
            username: username.to_owned(),
        }
    }

    /// The same user, talking to the node at `base`.
    pub fn on(&self, base: &str) -> Api {
        Api { base: base.to_owned(), ..self.clone() }
    }

    /// A request with the bearer token; returns status and JSON body (Null when empty).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// The id of the room `name` (which must be visible), following the list's pages.
    pub async fn room_id(&self, name: &str) -> i64 {
        let mut path = "/api/rooms?limit=500".to_owned();
        loop {
            let (_, body) = self.get(&path).await;
            let rooms = body["rooms"].as_array().expect("rooms");
            if let Some(room) = rooms.iter().find(|r| r["name"] == name) {
                return room["id"].as_i64().expect("id");
            }
            let next = body["next"].as_i64().unwrap_or_else(|| panic!("room {name} exists"));
            path = format!("/api/rooms?limit=500&after={next}");
        }
    }

    pub async fn create_room(&self, name: &str, visibility: &str) -> i64 {
        let (status, body) = self.post("/api/rooms", json!({"name": name, "visibility": visibility})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().expect("id")
    }

    /// A WebSocket authenticated with the bearer header, after its `hello`.
    pub async fn ws(&self, ws_url: &str) -> Ws {
        let mut req = ws_url.into_client_request().expect("ws url");
        req.headers_mut()
            .insert("authorization", HeaderValue::from_str(&format!("Bearer {}", self.token)).expect("header"));
        let mut ws = Ws::connect(req).await;
        let hello = ws.recv_type("hello").await;
        assert_eq!(hello["user"]["id"], self.user_id);
        assert_eq!(hello["protocol"], confab_schemas::PROTOCOL_VERSION, "{hello}");
        ws
    }
}

type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A protocol v1 client.
pub struct Ws {
    stream: Stream,
    /// Frames received but not yet consumed by a `recv_*` call.
    pub backlog: Vec<Value>,
    /// The last frames read from the socket and how it ended, for a failure's message.
    recent: std::collections::VecDeque<Value>,
    ended: Option<String>,
}

/// How many of the last frames a `Ws` keeps for a failure's message.
const RECENT: usize = 6;

impl Ws {
    pub async fn connect(req: tokio_tungstenite::tungstenite::handshake::client::Request) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("ws connect");
        Ws::from_stream(stream)
    }

    pub fn from_stream(stream: Stream) -> Ws {
        Ws { stream, backlog: Vec::new(), recent: Default::default(), ended: None }
    }

    /// Connects without any credentials.
    pub async fn anonymous(ws_url: &str) -> Ws {
        Ws::connect(ws_url.into_client_request().expect("ws url")).await
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream.send(Message::text(frame.to_string())).await.expect("ws send");
    }

    /// Sends a frame; false when the connection is gone.
    pub async fn try_send(&mut self, frame: Value) -> bool {
        self.stream.send(Message::text(frame.to_string())).await.is_ok()
    }

    /// Sends frames in one write to the socket, so that the server reads them together.
    pub async fn send_together(&mut self, frames: &[Value]) {
        for f in frames {
            self.stream.feed(Message::text(f.to_string())).await.expect("ws feed");
        }
        self.stream.flush().await.expect("ws flush");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        let _ = self.stream.send(msg).await;
    }

    /// The next frame from the server; `None` when the connection closed.
    pub async fn next(&mut self) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.next_from_socket(DEADLINE).await
    }

    /// `next`, waiting up to `wait` for a frame instead of the usual deadline.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.next_from_socket(wait).await
    }

    /// How the connection ended, once it did: a close frame, the end of the stream or an error.
    pub fn ended_how(&self) -> &str {
        self.ended.as_deref().unwrap_or("not ended")
    }

    async fn next_from_socket(&mut self, wait: Duration) -> Option<Value> {
        match self.poll_socket(wait).await {
            Ok(v) => v,
            Err(()) => panic!(
                "no frame within {wait:?}; the last frames read: {:?}; {} more waiting unclaimed",
                self.recent,
                self.backlog.len()
            ),
        }
    }

    /// The next frame, `Ok(None)` when the connection closed, `Err(())` when none came within
    /// `wait` (a quiet socket, not a failure).
    pub async fn next_or_quiet(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
        if !self.backlog.is_empty() {
            return Ok(Some(self.backlog.remove(0)));
        }
        self.poll_socket(wait).await
    }

    async fn poll_socket(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
        loop {
            let msg = tokio::time::timeout(wait, self.stream.next()).await.map_err(|_| ())?;
            let ended = match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                    if self.recent.len() == RECENT {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(v.clone());
                    return Ok(Some(v));
                }
                Some(Ok(Message::Close(c))) => {
                    format!("a close frame {:?}", c.map(|c| (u16::from(c.code), c.reason.to_string())))
                }
                None => "the end of the stream".to_owned(),
                Some(Err(e)) => format!("a read error: {e}"),
                Some(Ok(_)) => continue,
            };
            self.ended.get_or_insert(ended);
            return Ok(None);
        }
    }

    /// The next frame that satisfies `pred`; frames skipped on the way are kept in the backlog.
    pub async fn recv_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        loop {
            let Some(v) = self.next_from_socket(DEADLINE).await else {
                panic!(
                    "connection closed while waiting for {what} ({}); the last frames read: {:?}",
                    self.ended.as_deref().unwrap_or("?"),
                    self.recent
                )
            };
            if pred(&v) {
                return v;
            }
            self.backlog.push(v);
        }
    }

    pub async fn recv_type(&mut self, ty: &str) -> Value {
        self.recv_where(ty, |v| v["type"] == ty).await
    }

    /// The next `error` frame, which must carry `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let e = self.recv_type("error").await;
        assert_eq!(e["code"], code, "error frame {e}");
        e
    }

    /// Joins a room and returns the `joined` frame.
    pub async fn join(&mut self, room: i64, since: Option<u64>) -> Value {
        let mut frame = json!({"type": "join", "room": room});
        if let Some(s) = since {
            frame["since"] = json!(s);
        }
        self.send(frame).await;
        self.recv_where("joined", |v| v["type"] == "joined" && v["room"] == room).await
    }

    /// Proves the connection is alive and in order: a ping answered by a pong.
    pub async fn ping(&mut self) {
        self.send(json!({"type": "ping"})).await;
        self.recv_type("pong").await;
    }

    /// Message frames of `room` until `count` have arrived (other frames stay in the backlog).
    pub async fn messages(&mut self, room: i64, count: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            out.push(self.recv_where("message", |v| v["type"] == "message" && v["room"] == room).await);
        }
        out
    }

    /// Waits until the server closes the connection, returning the frames received meanwhile.
    pub async fn until_closed(&mut self) -> Vec<Value> {
        let mut frames = std::mem::take(&mut self.backlog);
        while let Some(v) = self.next_from_socket(DEADLINE).await {
            frames.push(v);
        }
        frames
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
