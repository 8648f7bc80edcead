//! `confab admin …`: account administration straight against the database (the same
//! `--data-dir` / `--database-url` / `--config` as `serve`), for the operator at the console.
//!
//! Generated passwords are printed once and stored only as Argon2id hashes. `reset-password`, and
//! `set-role` to a lower role, end every login of the account and write a revocation row: every
//! running node closes the account's open sockets within about a second (`crate::revocations`).

use crate::config::{NodeConfig, ServeArgs};
use anyhow::{Context, bail};
use confab_actors::Store;
use confab_gateway::auth::{generated_password, hash_password, validate_username};
use confab_schemas::Role;

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub cmd: AdminCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCmd {
    /// Create an admin account and print its generated password (shown once).
    CreateAdmin {
        name: String,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Give an account a new generated password (printed once) and end all its logins.
    ResetPassword {
        name: String,
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Set an account's role: user, moderator or admin.
    SetRole {
        name: String,
        role: String,
        #[command(flatten)]
        db: ServeArgs,
    },
}

impl AdminCmd {
    fn db(&self) -> &ServeArgs {
        match self {
            AdminCmd::CreateAdmin { db, .. } | AdminCmd::ResetPassword { db, .. } | AdminCmd::SetRole { db, .. } => db,
        }
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let config = NodeConfig::resolve(args.cmd.db())?;
    let store = Store::connect(&config.database_url, config.sqlite_sync)
        .await
        .with_context(|| format!("opening the database {}", crate::redact(&config.database_url)))?;
    let result = command(&store, args.cmd).await;
    store.close().await;
    result
}

async fn command(store: &Store, cmd: AdminCmd) -> anyhow::Result<()> {
    match cmd {
        AdminCmd::CreateAdmin { name, .. } => {
            validate_username(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = generated_password();
            let hash = hash_password(password.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let user =
                store.create_user(&name, &hash, Role::Admin).await.with_context(|| format!("creating {name}"))?;
            store.audit(None, "admin.create_admin", None, &user.username).await?;
            println!("created admin {} (id {})", user.username, user.id);
            println!("password: {password}");
            println!("it is shown only now; change it after the first login");
        }
        AdminCmd::ResetPassword { name, .. } => {
            let user = store.user_by_name(&name).await?.with_context(|| format!("no user {name}"))?;
            let password = generated_password();
            let hash = hash_password(password.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            store.set_password_hash(user.id, &hash).await?;
            store.revoke_user_families(user.id, "password reset by admin").await?;
            store.add_revocation(user.id, "password reset by admin", false).await?;
            store.audit(None, "admin.reset_password", None, &user.username).await?;
            println!("new password for {}: {password}", user.username);
            println!("every login of {} has ended", user.username);
        }
        AdminCmd::SetRole { name, role, .. } => {
            let role = match role.as_str() {
                "user" => Role::User,
                "moderator" => Role::Moderator,
                "admin" => Role::Admin,
                other => bail!("role must be user, moderator or admin, not {other}"),
            };
            let user = store.user_by_name(&name).await?.with_context(|| format!("no user {name}"))?;
            store.set_user_role(user.id, role).await?;
            // Losing a role ends every login and closes the open sockets on every node. Gaining
            // one needs neither: every request reads the role from the database.
            let demoted = role.rank() < user.role.rank();
            if demoted {
                store.revoke_user_families(user.id, "role lowered by admin").await?;
                store.add_revocation(user.id, "role lowered by admin", false).await?;
            }
            store.audit(None, "admin.set_role", None, &format!("{} {}", user.username, role.as_str())).await?;
            println!("{} is now {}", user.username, role.as_str());
            if demoted {
                println!("every login of {} has ended", user.username);
            }
        }
    }
    Ok(())
}
