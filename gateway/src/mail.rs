//! Outgoing mail: the email one-time codes. Over SMTP when `--smtp-url` is set; otherwise every
//! message is written to the log and to a file under `<data-dir>/outbox/` (for development).

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use tracing::info;

pub enum Mailer {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
    Outbox(PathBuf),
}

impl Mailer {
    /// `smtp://[user:pass@]host[:port]` (plain SMTP: relay through a local MTA for TLS), or the
    /// outbox directory when `url` is `None`.
    pub fn new(url: Option<&str>, from: &str, outbox: PathBuf) -> Result<Mailer, String> {
        let Some(url) = url else { return Ok(Mailer::Outbox(outbox)) };
        let rest = url.strip_prefix("smtp://").ok_or("--smtp-url must start with smtp://")?;
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "--smtp-url: bad port")?),
            None => (hostport, 25),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port);
        if let Some(c) = creds {
            let (user, pass) = c.split_once(':').ok_or("--smtp-url: credentials are user:password")?;
            builder = builder.credentials(Credentials::new(user.to_owned(), pass.to_owned()));
        }
        let from = from.parse::<Mailbox>().map_err(|e| format!("--smtp-from: {e}"))?;
        Ok(Mailer::Smtp { transport: builder.build(), from })
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { .. } => "SMTP".into(),
            Mailer::Outbox(dir) => format!("no SMTP: codes go to the log and to {}", dir.display()),
        }
    }

    /// Sends a sign-in code.
    pub async fn send_code(&self, to: &str, code: &str) -> Result<(), String> {
        let text = format!("Your Confab sign-in code is {code}\n\nIt is valid for 10 minutes and can be used once.\n");
        match self {
            Mailer::Smtp { transport, from } => {
                let to = to.parse::<Mailbox>().map_err(|e| e.to_string())?;
                let msg = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject("Your Confab sign-in code")
                    .body(text)
                    .map_err(|e| e.to_string())?;
                transport.send(msg).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Mailer::Outbox(dir) => {
                info!(to, code, "sign-in code (no SMTP configured)");
                tokio::fs::create_dir_all(dir).await.map_err(|e| e.to_string())?;
                let file = dir.join(format!("{}-{}.txt", confab_schemas::now_ms(), sanitize(to)));
                tokio::fs::write(file, format!("To: {to}\n\n{text}")).await.map_err(|e| e.to_string())
            }
        }
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '@' { c } else { '_' }).collect()
}
