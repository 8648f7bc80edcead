//! A real SMTP listener for tests: it speaks just enough SMTP (EHLO/HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT) for lettre to deliver, and hands each message's text to the test.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub struct SmtpSink {
    pub url: String,
    rx: mpsc::UnboundedReceiver<String>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let url = format!("smtp://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 test ESMTP\r\n").await;
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(body) = data.as_mut() {
                            if line == "." {
                                let _ = tx.send(std::mem::take(body));
                                data = None;
                                let _ = w.write_all(b"250 OK queued\r\n").await;
                            } else {
                                body.push_str(line.strip_prefix('.').unwrap_or(&line));
                                body.push('\n');
                            }
                            continue;
                        }
                        let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 test\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        let _ = w.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink { url, rx }
    }

    /// The next delivered message, within the test deadline.
    pub async fn next_message(&mut self) -> String {
        tokio::time::timeout(crate::DEADLINE, self.rx.recv())
            .await
            .expect("a mail within the deadline")
            .expect("smtp sink open")
    }

    /// The 6-digit code of the next delivered message.
    pub async fn next_code(&mut self) -> String {
        let text = self.next_message().await;
        let after = text.split("code is ").nth(1).unwrap_or_else(|| panic!("no code in {text}"));
        let code: String = after.chars().take_while(char::is_ascii_digit).collect();
        assert_eq!(code.len(), 6, "a 6-digit code in {text}");
        code
    }
}
