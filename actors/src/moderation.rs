//! `ModerationQueue`: one per active room, supervised beside it.
//!
//! For now it collects users' reports about the room or one of its messages and writes each to
//! the reports table and the audit log. Automatic flags and pre-moderation holds come later; they
//! will live here so the room actor only asks "may this pass?".

use crate::store::Store;
use confab_schemas::{RoomId, UserId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

pub enum ModerationMsg {
    Report { seq: Option<u64>, reporter: UserId, reason: String, reply: RpcReplyPort<Result<i64, String>> },
}

pub struct ModerationArgs {
    pub room: RoomId,
    pub store: Store,
}

pub struct ModerationQueue;

impl Actor for ModerationQueue {
    type Msg = ModerationMsg;
    type State = ModerationArgs;
    type Arguments = ModerationArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<ModerationMsg>,
        args: ModerationArgs,
    ) -> Result<ModerationArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _me: ActorRef<ModerationMsg>,
        msg: ModerationMsg,
        st: &mut ModerationArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModerationMsg::Report { seq, reporter, reason, reply } => {
                let res = async {
                    let id = st.store.add_report(st.room, seq, reporter, &reason).await?;
                    let detail = format!("report {id} seq {seq:?}: {reason}");
                    st.store.audit(Some(reporter), "report", Some(st.room), &detail).await?;
                    Ok::<_, crate::Error>(id)
                }
                .await;
                let _ = reply.send(res.map_err(|e| e.to_string()));
            }
        }
        Ok(())
    }
}
