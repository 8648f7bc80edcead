//! Argon2id password hashing in bounded memory.
//!
//! Argon2id with its default parameters works in 19 MiB. Two things kept that memory around:
//! - Each hash ran on its own blocking thread, so a burst of registrations or logins ran one per
//!   thread (up to 512) at once.
//! - Each hash allocated its 19 MiB afresh, and glibc's allocator kept it: once the first such
//!   block was freed, glibc raised its mmap threshold above 19 MiB, later blocks came from the heap,
//!   and the heap did not give them back. A node grew by 19 MiB per registration, sequential ones
//!   included (64 registrations: 1.2 GB resident, for good; BENCHMARKS.md, "Password hashing").
//!
//! Here at most `min(CPUs, 8)` hashes run at once (they are CPU-bound, so more would gain nothing),
//! each in a working buffer taken from a pool and put back. So the memory for hashing is allocated
//! once per slot and reused: at most 8 × 19 MiB, whatever the load. Requests beyond the slots wait
//! without holding a thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The most hashes at once, whatever the CPU count.
const MAX_AT_ONCE: usize = 8;

struct Slots {
    permits: Arc<Semaphore>,
    /// Working buffers not in use (at most one per permit).
    buffers: Mutex<Vec<Vec<Block>>>,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Slots { permits: Arc::new(Semaphore::new(cpus.min(MAX_AT_ONCE))), buffers: Mutex::new(Vec::new()) }
    })
}

/// Runs `f` on a blocking thread with a working buffer, once a slot is free. The permit moves
/// into the blocking task, so a request dropped while its hash runs keeps the slot until the hash
/// is done. None when the blocking task could not run.
async fn with_buffer<T: Send + 'static>(f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static) -> Option<T> {
    let permit: OwnedSemaphorePermit = slots().permits.clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let taken = slots().buffers.lock().ok().and_then(|mut b| b.pop());
        let mut buffer = taken.unwrap_or_default();
        let out = f(&mut buffer);
        if let Ok(mut b) = slots().buffers.lock() {
            b.push(buffer);
        }
        out
    })
    .await
    .ok()
}

/// `argon` over `pwd` and `salt` into an output of `len` bytes, in `buffer` (grown as needed;
/// every block is written before it is read, so what a buffer held before does not matter).
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    pwd: &[u8],
    salt: &[u8],
    len: usize,
    buffer: &mut Vec<Block>,
) -> Result<Output, argon2::password_hash::Error> {
    let blocks = params.block_count();
    if buffer.len() < blocks {
        buffer.resize(blocks, Block::default());
    }
    Output::init_with(len, |out| Ok(argon.hash_password_into_with_memory(pwd, salt, out, &mut buffer[..blocks])?))
}

/// The PHC string of a new Argon2id hash of `pwd` (default parameters, random salt).
pub(crate) async fn hash(pwd: String) -> Option<Result<String, argon2::password_hash::Error>> {
    with_buffer(move |buffer| {
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
        let output = compute(&argon, &params, pwd.as_bytes(), salt_bytes, Params::DEFAULT_OUTPUT_LEN, buffer)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    })
    .await
}

/// Whether `pwd` matches the PHC string `phc` (an Argon2 hash with its own parameters). The
/// comparison of the outputs is constant-time (`Output`'s equality).
pub(crate) async fn verify(pwd: String, phc: String) -> bool {
    with_buffer(move |buffer| {
        let mut check = || -> Result<bool, argon2::password_hash::Error> {
            let h = PasswordHash::new(&phc)?;
            let (Some(salt), Some(expected)) = (h.salt, h.hash) else { return Ok(false) };
            let params = Params::try_from(&h)?;
            let version = h.version.map(Version::try_from).transpose()?.unwrap_or_default();
            let argon = Argon2::new(Algorithm::try_from(h.algorithm)?, version, params.clone());
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
            let out = compute(&argon, &params, pwd.as_bytes(), salt_bytes, expected.len(), buffer)?;
            Ok(out == expected)
        };
        check().unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[tokio::test]
    async fn hashes_verify_both_ways_with_the_argon2_crate() {
        let ours = super::hash("correct horse".into()).await.expect("ran").expect("hashed");
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        // The crate's own verifier accepts ours, and ours accepts the crate's.
        let parsed = argon2::PasswordHash::new(&ours).expect("PHC string");
        assert!(argon2::Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        let salt = argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = argon2::Argon2::default().hash_password(b"correct horse", &salt).expect("hash").to_string();
        assert!(super::verify("correct horse".into(), theirs.clone()).await);
        assert!(!super::verify("wrong horse".into(), theirs).await);
        assert!(super::verify("correct horse".into(), ours.clone()).await);
        assert!(!super::verify("correct horsf".into(), ours).await);
        assert!(!super::verify("correct horse".into(), "not a hash".into()).await);
    }
}
