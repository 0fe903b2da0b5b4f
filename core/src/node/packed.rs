//! Packed requests taken straight from their bytes: the common forms of the hottest commands
//! (`SET`, `INCR`, `TS.ADD`, `GET`, `BATCH_SET`).
//!
//! Outside the command itself, what a request costs the node is mostly its `Vec<Bytes>` of
//! arguments (an allocation, and a reference count taken and dropped per argument), the table
//! lookup, and the checks of its connection's state. A request of one of the forms below that
//! arrives packed ([`Input::Requests`](super::Input::Requests)) skips the first two: the
//! parser reads it from the packed bytes (`cmd::parse_common_write`, `BATCH_SET` in
//! [`super::batch`]), and [`Node::takes_now`] makes the checks in one place. Whenever anything
//! about the request or its connection is out of the ordinary, the fast path declines, having
//! changed nothing, and the request goes the general way, which gives every error, every
//! deferral and every diversion. `node::tests::packed_requests_answer_as_single_ones` holds
//! the two ways to the same outputs.

use super::conn::Kind;
use super::reads::ReadVia;
use super::write::ReplyShape;
use super::{ConnId, Node};
use crate::UnixMillis;
use crate::cmd::{self, ReadCmd};
use crate::resp::PackedRequest;
use crate::store::Store;

impl<S: Store> Node<S> {
    /// Runs a packed request by a fast path when one takes it: true when it did.
    pub(super) fn packed_request(
        &mut self,
        conn: ConnId,
        request: &PackedRequest<'_>,
        unix: UnixMillis,
    ) -> bool {
        self.batch_set_packed(conn, request, unix)
            || self.common_write_packed(conn, request, unix)
            || self.get_packed(conn, request, unix)
    }

    /// Whether a request of `kind` that is neither a transaction's control nor allowed in
    /// subscribed mode runs on `conn` at once, the general way: not dropped with a closed
    /// connection or deferred behind what the connection waits for (`request_input`), not
    /// queued in a transaction, refused before authentication, diverted in subscribed mode
    /// or refused by a failed node (`request_as`). `path`: where a read would wait, as
    /// `request_input` finds it.
    pub(super) fn takes_now(&self, conn: ConnId, kind: Kind, path: Option<ReadVia>) -> bool {
        // Only a RESP2 client has a subscribed mode; any subscription declines.
        if self.failed.is_some() || self.pubsub.count(conn) > 0 {
            return false;
        }
        self.conns.get(&conn).is_some_and(|c| {
            !c.closing
                && c.deferred.is_empty()
                && c.ready(kind, path)
                && !c.txn.queuing()
                && c.authenticated
        })
    }

    /// `SET key value`, `INCR key` or `TS.ADD key ts value [ON_DUPLICATE policy]` that the
    /// connection runs now, written as `request_as` would write it.
    fn common_write_packed(
        &mut self,
        conn: ConnId,
        request: &PackedRequest<'_>,
        unix: UnixMillis,
    ) -> bool {
        let Some((name, write)) = cmd::parse_common_write(request) else {
            return false;
        };
        if !self.takes_now(conn, Kind::Write, None) {
            return false;
        }
        self.taken(conn, name, request, unix);
        self.write(conn, vec![write], ReplyShape::Single, unix);
        true
    }

    /// `GET key` that the connection reads now from this node's state or through a ReadIndex
    /// round, read as `request_as` would read it. A read forwarded to the leader declines: it
    /// travels as its arguments.
    fn get_packed(&mut self, conn: ConnId, request: &PackedRequest<'_>, unix: UnixMillis) -> bool {
        if request.len() != 2 || !request.arg(0).eq_ignore_ascii_case(b"get") {
            return false;
        }
        let path = self.read_via(conn);
        if path == Some(ReadVia::Forward) || !self.takes_now(conn, Kind::Read, path) {
            return false;
        }
        self.taken(conn, "get", request, unix);
        self.read(conn, ReadCmd::Get(request.arg_bytes(1)), Vec::new(), unix);
        true
    }

    /// What `request_input` and `request_as` note of a request they run, for one a fast path
    /// takes (`name` as the command table spells it): the connection's last activity and
    /// command, the server's input bytes and command count, the client's clock.
    pub(super) fn taken(
        &mut self,
        conn: ConnId,
        name: &'static str,
        request: &PackedRequest<'_>,
        unix: UnixMillis,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.ran(self.now, name);
        }
        self.count_taken(request, unix);
    }

    /// The node-wide part of [`Node::taken`], for a caller that notes the connection's part
    /// itself ([`super::conn::Conn::ran`]) while it holds the connection.
    pub(super) fn count_taken(&mut self, request: &PackedRequest<'_>, unix: UnixMillis) {
        self.stats.net_input_bytes += request.wire_bytes();
        self.stats.commands += 1;
        self.note_unix(unix);
    }
}
