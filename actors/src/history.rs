//! The history cache: pages of committed room history in foyer (memory, spilling to disk).
//!
//! A page holds the 64 messages with seq in `[64p + 1, 64p + 64]` of one room. Only full pages,
//! entirely at or below the committed head, are cached: they never change (edits and deletes,
//! when they come, must call `invalidate`). The partial newest page always comes from storage.
//! The cache is never the record: a miss, an eviction or an error just means a database read.

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::Store;
use confab_schemas::{MessageRow, RoomId};
use foyer::{Code, DeviceBuilder, HybridCache, HybridCacheBuilder};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

/// Messages per cached page.
pub const PAGE: u64 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    room: i64,
    page: u64,
}

impl Code for PageKey {
    fn encode(&self, w: &mut impl std::io::Write) -> foyer::Result<()> {
        w.write_all(&self.room.to_le_bytes()).map_err(foyer::Error::io_error)?;
        w.write_all(&self.page.to_le_bytes()).map_err(foyer::Error::io_error)
    }

    fn decode(r: &mut impl std::io::Read) -> foyer::Result<Self> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).map_err(foyer::Error::io_error)?;
        let room = i64::from_le_bytes(b);
        r.read_exact(&mut b).map_err(foyer::Error::io_error)?;
        Ok(PageKey { room, page: u64::from_le_bytes(b) })
    }

    fn estimated_size(&self) -> usize {
        16
    }
}

/// One page of history, postcard-encoded on disk. The disk cache is emptied at every start, so
/// the encoding never has to read another version's bytes.
#[derive(Debug, Clone)]
pub struct Page(Vec<MessageRow>);

impl Code for Page {
    fn encode(&self, w: &mut impl std::io::Write) -> foyer::Result<()> {
        let bytes = postcard_encode(&self.0)?;
        w.write_all(&(bytes.len() as u32).to_le_bytes()).map_err(foyer::Error::io_error)?;
        w.write_all(&bytes).map_err(foyer::Error::io_error)
    }

    fn decode(r: &mut impl std::io::Read) -> foyer::Result<Self> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).map_err(foyer::Error::io_error)?;
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut buf).map_err(foyer::Error::io_error)?;
        postcard::from_bytes(&buf).map(Page).map_err(|e| foyer::Error::io_error(std::io::Error::other(e)))
    }

    fn estimated_size(&self) -> usize {
        4 + self.0.iter().map(|m| 96 + m.body.len() + m.cid.len() + m.sender_name.len()).sum::<usize>()
    }
}

fn postcard_encode(rows: &[MessageRow]) -> foyer::Result<Vec<u8>> {
    postcard::to_stdvec(rows).map_err(|e| foyer::Error::io_error(std::io::Error::other(e)))
}

/// Cached history pages of every room on this node.
#[derive(Clone)]
pub struct HistoryCache {
    cache: HybridCache<PageKey, Page>,
}

impl HistoryCache {
    /// A cache of `memory_bytes` in memory and, when `dir` is given, `disk_bytes` on disk there.
    pub async fn open(dir: Option<&Path>, memory_bytes: usize, disk_bytes: usize) -> Result<HistoryCache> {
        let builder = HybridCacheBuilder::new()
            .with_name("confab-history")
            .memory(memory_bytes)
            .with_weighter(|_k: &PageKey, v: &Page| v.estimated_size())
            .storage();
        let cache = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::Cache(e.to_string()))?;
                let device = foyer::FsDeviceBuilder::new(dir)
                    .with_capacity(disk_bytes)
                    .build()
                    .map_err(|e| Error::Cache(e.to_string()))?;
                builder.with_engine_config(foyer::BlockEngineConfig::new(device)).build().await
            }
            None => builder.build().await,
        }
        .map_err(|e| Error::Cache(e.to_string()))?;
        Ok(HistoryCache { cache })
    }

    /// Messages with `from <= seq <= to` (all at or below `head`), ascending.
    pub async fn range(
        &self,
        store: &Store,
        metrics: &Metrics,
        room: RoomId,
        from: u64,
        to: u64,
        head: u64,
    ) -> Result<Vec<MessageRow>> {
        let to = to.min(head);
        if from == 0 || from > to {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        for page in (from - 1) / PAGE..=(to - 1) / PAGE {
            let (start, end) = (page * PAGE + 1, page * PAGE + PAGE);
            let wanted = |m: &&MessageRow| m.seq >= from && m.seq <= to;
            if end > head {
                metrics.history_reads_database.fetch_add(1, Relaxed);
                let rows = store.messages_between(room, start.max(from), end.min(to), PAGE as u32).await?;
                out.extend(rows);
                continue;
            }
            let key = PageKey { room: room.0, page };
            let cached = self.cache.get(&key).await.ok().flatten();
            match cached {
                Some(entry) => {
                    metrics.history_cache_hits.fetch_add(1, Relaxed);
                    metrics.history_reads_cache.fetch_add(1, Relaxed);
                    out.extend(entry.value().0.iter().filter(wanted).cloned());
                }
                None => {
                    metrics.history_cache_misses.fetch_add(1, Relaxed);
                    metrics.history_reads_database.fetch_add(1, Relaxed);
                    let rows = store.messages_between(room, start, end, PAGE as u32).await?;
                    out.extend(rows.iter().filter(wanted).cloned());
                    if rows.len() as u64 == PAGE {
                        self.cache.insert(key, Page(rows));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Forgets the page holding `seq` (after an edit or delete).
    pub fn invalidate(&self, room: RoomId, seq: u64) {
        if seq > 0 {
            self.cache.remove(&PageKey { room: room.0, page: (seq - 1) / PAGE });
        }
    }

    /// Forgets every cached page of a deleted room (pages are keyed by room and page number;
    /// foyer has no prefix removal, so the pages up to the room's last cached one are removed).
    pub fn forget_room(&self, room: RoomId) {
        let mut page = 0;
        while self.cache.contains(&PageKey { room: room.0, page }) {
            self.cache.remove(&PageKey { room: room.0, page });
            page += 1;
        }
    }

    pub async fn close(&self) {
        let _ = self.cache.close().await;
    }
}
