//! The room's lease: one node sequences a room at a time (lease + epoch, fenced in the commit
//! transaction). A starting incarnation takes the lease, waiting briefly for a live holder to
//! hand it over; a handoff finishes its writes in flight, releases the lease and stops with
//! `StopReason::Moved`.

use super::*;

/// Longest wait for another live node to release a room's lease (a handoff in progress).
const LEASE_WAIT: Duration = Duration::from_secs(3);

/// Takes the room's lease: at once when it is free, lapsed, ours or held by a node that is not
/// live; otherwise waits for its holder to hand it over.
pub(super) async fn acquire_lease(ctx: &Ctx, room: RoomId) -> Result<u64, ActorProcessingErr> {
    let cluster = ctx.cluster();
    let deadline = Instant::now() + LEASE_WAIT;
    loop {
        if !cluster.may_sequence() {
            return Err(format!("room {room}: this node cannot reach a majority of its cluster").into());
        }
        let node = &ctx.config.node_id;
        // Set when the lease is taken from a holder that is not live: a failover.
        let forced = std::sync::atomic::AtomicBool::new(false);
        let gone = |holder: &str| {
            let gone = !cluster.is_live(holder);
            forced.store(gone, Relaxed);
            gone
        };
        let taken = ctx.store.try_take_lease(room, node, ctx.config.lease_ttl_ms, gone).await?;
        if let Some(epoch) = taken {
            if forced.load(Relaxed) {
                ctx.metrics.failovers.fetch_add(1, Relaxed);
                tracing::info!(%room, epoch, "took the room over from a node that is not live");
            }
            return Ok(epoch);
        }
        if Instant::now() > deadline {
            return Err(format!("room {room}: its lease is still held by a live node").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl RoomState {
    /// Ends a handoff once every write in flight is answered: releases the lease, tells the
    /// subscribed nodes to find the new owner, and stops (the directory keeps the subscribers).
    pub(super) async fn finish_handoff(&mut self, me: &ActorRef<RoomMsg>) {
        if !self.shared.lock().pending.is_empty() {
            return;
        }
        if let Err(e) = self.ctx.store.release_lease(self.room.id, &self.ctx.config.node_id).await {
            warn!(room = %self.room.id, err = %e, "releasing the lease failed; the next owner waits for it to lapse");
        }
        for link in self.shared.lock().nodes.drain(..) {
            let _ = link.send(NodeFrame::Moved { room: self.room.id });
        }
        self.ctx.metrics.handoffs.fetch_add(1, Relaxed);
        me.stop(StopReason::Moved.reason());
    }
}
