//! `BATCH_SET` and `BATCH_FLUSH`: samples buffered on a connection, then written as one entry.
//!
//! A `BATCH_SET` is a request per sample, so what a request costs the node outside the
//! command itself (decoding into a `Vec<Bytes>`, the table lookup, the checks of the
//! connection's state, the parse into a `Command`) was most of a sample's cost. Requests that
//! arrive packed ([`Input::Requests`](super::Input::Requests)) take [`Node::batch_set_packed`]
//! instead: the same checks, read from the packed bytes in one place, and only the key kept.
//! Whenever anything about the request or its connection is out of the ordinary, it declines
//! and the request goes the general way, which gives every error and every deferral.

use bytes::Bytes;

use super::conn::Kind;
use super::write::ReplyShape;
use super::{BATCH_MAX_SAMPLES, BATCH_ROOM_KEPT, Node};
use crate::UnixMillis;
use crate::cmd::ts::TsWrite;
use crate::cmd::{self, WriteCmd};
use crate::node::ConnId;
use crate::resp::{Frame, PackedRequest};
use crate::store::Store;

/// The command's name as the table spells it (what `CLIENT LIST` shows as its `cmd`).
const BATCH_SET: &str = "batch_set";

impl<S: Store> Node<S> {
    /// `BATCH_SET key value ts` after it was parsed: buffers the sample, or refuses it when
    /// the connection's buffer is full.
    pub(super) fn batch_set(&mut self, conn: ConnId, key: Bytes, value: f64, ts: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.batch.len() >= BATCH_MAX_SAMPLES {
            let msg = format!(
                "ERR BATCH_SET buffer is full ({BATCH_MAX_SAMPLES} samples): send BATCH_FLUSH"
            );
            return self.reply(conn, Frame::error(msg));
        }
        c.batch.push((key, ts, value));
        self.reply(conn, Frame::ok());
    }

    /// `BATCH_FLUSH`: the connection's buffered samples as one write, answered with how many
    /// of them did not fail.
    pub(super) fn batch_flush(&mut self, conn: ConnId, unix: UnixMillis) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // The next batch gets this one's size at once (grown push by push, its
        // reallocations were ~50 instructions a sample), up to what a connection may hold
        // between batches.
        let room = c.batch.len().min(BATCH_ROOM_KEPT);
        let samples = std::mem::replace(&mut c.batch, Vec::with_capacity(room));
        if samples.is_empty() {
            return self.reply(conn, Frame::Integer(0));
        }
        let cmd = WriteCmd::Ts(TsWrite::Batch(samples));
        self.write(conn, vec![cmd], ReplyShape::Count, unix);
    }

    /// A packed request that is a `BATCH_SET` the connection can take now, taken straight
    /// from the packed bytes: true when it was (answered `+OK`). False, having changed
    /// nothing, for anything else; the caller then runs it as any request, and that gives the
    /// same outcome this would have (the tests hold the two to that).
    pub(super) fn batch_set_packed(
        &mut self,
        conn: ConnId,
        request: &PackedRequest<'_>,
        unix: UnixMillis,
    ) -> bool {
        if request.len() != 4
            || !request.arg(0).eq_ignore_ascii_case(BATCH_SET.as_bytes())
            || !self.takes_now(conn, Kind::Other, None)
        {
            return false;
        }
        let Ok((value, ts)) = cmd::batch_sample(request.arg(2), request.arg(3)) else {
            return false;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if c.batch.len() >= BATCH_MAX_SAMPLES {
            return false;
        }
        c.ran(self.now, BATCH_SET);
        c.batch.push((request.arg_bytes(1), ts, value));
        self.count_taken(request, unix);
        self.reply(conn, Frame::ok());
        true
    }
}
