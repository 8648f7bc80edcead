//! Attachments at sequencing: a message's uploads are claimed for it (by the sender's `cid`)
//! in storage before it gets its seq, all or none, so an upload never rides on two messages and
//! a file the sender does not own is never sent. Read and written on each such send, like
//! `check_dm_blocks`, so it holds across nodes.

use super::*;
use crate::store::ClaimRefusal;
use confab_schemas::Attachment;

impl RoomState {
    /// Claims `ids` (uploads of `sender`) for the message `cid`, or refuses the message:
    /// `attachment_not_found` (absent, another user's, expired) or `attachment_used`. The ids'
    /// count and form were checked by the sender's session (`check_attachment_ids`).
    pub(super) async fn claim_attachments(
        &self,
        sender: UserId,
        cid: &Arc<str>,
        ids: &[Arc<str>],
    ) -> Result<Vec<Attachment>, Refusal> {
        let orphans_before = now_ms() - self.ctx.config.upload_orphan_ttl.as_millis() as i64;
        let claimed = self
            .ctx
            .store
            .claim_uploads(sender, self.room_id(), cid, self.next_seq, ids, orphans_before)
            .await
            .map_err(internal)?;
        claimed.map_err(|refusal| match refusal {
            ClaimRefusal::NotFound(id) => Refusal::new(
                ErrorCode::AttachmentNotFound,
                format!("there is no upload {id} of yours (uploads not sent within their time are deleted)"),
            ),
            ClaimRefusal::Used(id) => {
                Refusal::new(ErrorCode::AttachmentUsed, format!("upload {id} is attached to another message"))
            }
        })
    }
}
