//! Connection and server commands ([`ConnCmd`]): PING, HELLO, AUTH, CLIENT, CONFIG, COMMAND,
//! INFO and the others that describe or set up one connection or this node rather than the
//! replicated state, and the dispatch of MULTI, pub/sub and CLUSTER to their modules.

use bytes::Bytes;

use super::write::ReplyShape;
use super::{ConnId, ConnKind, Node, Output, REDIS_COMPAT_VERSION, Stats, info, txn};
use crate::UnixMillis;
use crate::cmd::{self, CommandError, ConnCmd, WriteCmd};
use crate::resp::{Frame, Protocol};
use crate::store::Store;

impl<S: Store> Node<S> {
    pub(super) fn conn_command(&mut self, conn: ConnId, cmd: ConnCmd, unix: UnixMillis) {
        let reply = match cmd {
            ConnCmd::Ping(msg) if self.in_subscribe_mode(conn) => Frame::Array(vec![
                Frame::bulk(Bytes::from_static(b"pong")),
                Frame::Bulk(msg.unwrap_or_default()),
            ]),
            ConnCmd::Ping(None) => match self.conns.get(&conn).map(|c| c.protocol) {
                Some(_) => Frame::simple("PONG"),
                None => return,
            },
            c @ (ConnCmd::Ping(Some(_)) | ConnCmd::Echo(_) | ConnCmd::Time) => {
                txn::conn_op(c, unix)
            }
            ConnCmd::Quit => {
                self.reply(conn, Frame::ok());
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.closing = true;
                }
                self.outputs.push_back(Output::Close { conn });
                return;
            }
            ConnCmd::Reset => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.protocol = Protocol::Resp2;
                    c.name = None;
                    c.readonly = false;
                    c.batch.clear();
                    c.txn = txn::ConnTxn::default();
                    c.authenticated = self.config.requirepass.is_none();
                }
                self.pubsub.drop_conn(conn);
                Frame::simple("RESET")
            }
            ConnCmd::Hello {
                protover,
                auth,
                setname,
            } => self.hello(conn, protover, auth, setname),
            ConnCmd::Auth { user, password } => self.auth(conn, user.as_deref(), &password),
            ConnCmd::Select(0) => Frame::ok(),
            ConnCmd::Select(_) => Frame::error("ERR DB index is out of range"),
            ConnCmd::ClientId => Frame::Integer(i64::try_from(conn.0).unwrap_or(i64::MAX)),
            ConnCmd::ClientSetName(name) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.name = (!name.is_empty()).then_some(name);
                }
                Frame::ok()
            }
            ConnCmd::ClientGetName => self
                .conns
                .get(&conn)
                .and_then(|c| c.name.clone())
                .map_or(Frame::Null, Frame::Bulk),
            ConnCmd::ClientSetInfo => Frame::ok(),
            ConnCmd::ClientList => {
                let lines: String = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.remote.is_none())
                    .map(|(&id, _)| self.client_line(id) + "\n")
                    .collect();
                Frame::Verbatim {
                    format: *b"txt",
                    text: Bytes::from(lines),
                }
            }
            ConnCmd::ClientInfo => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.client_line(conn) + "\n"),
            },
            ConnCmd::Info(sections) => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.info(&sections)),
            },
            ConnCmd::ConfigGet(patterns) => self.config_get(&patterns),
            ConnCmd::ConfigSet(pairs) => match self.config_set(conn, pairs, unix) {
                Some(frame) => frame,
                None => return,
            },
            ConnCmd::ConfigResetStat => {
                self.stats = Stats::default();
                Frame::ok()
            }
            ConnCmd::CommandAll => {
                Frame::Array(cmd::COMMANDS.iter().map(|s| s.info_frame()).collect())
            }
            ConnCmd::CommandCount => Frame::Integer(cmd::COMMANDS.len() as i64),
            ConnCmd::CommandList => Frame::Array(
                cmd::COMMANDS
                    .iter()
                    .map(|s| Frame::bulk(Bytes::from_static(s.name.as_bytes())))
                    .collect(),
            ),
            ConnCmd::CommandInfo(names) => {
                if names.is_empty() {
                    Frame::Array(cmd::COMMANDS.iter().map(|s| s.info_frame()).collect())
                } else {
                    Frame::Array(
                        names
                            .iter()
                            .map(|n| cmd::lookup(n).map_or(Frame::NullArray, |s| s.info_frame()))
                            .collect(),
                    )
                }
            }
            ConnCmd::CommandDocs(names) => {
                let specs: Vec<_> = if names.is_empty() {
                    cmd::COMMANDS.iter().collect()
                } else {
                    names.iter().filter_map(|n| cmd::lookup(n)).collect()
                };
                Frame::Map(
                    specs
                        .into_iter()
                        .map(|s| {
                            (
                                Frame::bulk(Bytes::from_static(s.name.as_bytes())),
                                s.docs_frame(),
                            )
                        })
                        .collect(),
                )
            }
            ConnCmd::CommandGetKeys(args) => getkeys(&args),
            ConnCmd::ModuleList => info::module_list(),
            ConnCmd::DbSize => {
                Frame::Integer(i64::try_from(self.db.key_count()).unwrap_or(i64::MAX))
            }
            ConnCmd::ClusterInfo => Frame::Verbatim {
                format: *b"txt",
                text: Bytes::from(self.cluster_info_text()),
            },
            ConnCmd::Cluster(cc) => match self.cluster_command(conn, cc, unix) {
                Some(frame) => frame,
                None => return,
            },
            ConnCmd::Multi => self.multi(conn),
            ConnCmd::Exec => return self.exec(conn, unix),
            ConnCmd::Discard => self.discard(conn),
            ConnCmd::Watch(keys) => self.watch(conn, keys),
            ConnCmd::Unwatch => self.unwatch(conn),
            ConnCmd::Subscribe { patterns, names } => {
                return self.subscribe(conn, patterns, names);
            }
            ConnCmd::Unsubscribe { patterns, names } => {
                return self.unsubscribe(conn, patterns, names);
            }
            ConnCmd::PubSubChannels(pattern) => self.pubsub_channels(pattern.as_deref()),
            ConnCmd::PubSubNumSub(channels) => self.pubsub_numsub(&channels),
            ConnCmd::PubSubNumPat => self.pubsub_numpat(),
            ConnCmd::ReadOnly | ConnCmd::ReadWrite => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.readonly = matches!(cmd, ConnCmd::ReadOnly);
                }
                Frame::ok()
            }
        };
        self.reply(conn, reply);
    }

    fn hello(
        &mut self,
        conn: ConnId,
        protover: Option<i64>,
        auth: Option<(Bytes, Bytes)>,
        setname: Option<Bytes>,
    ) -> Frame {
        let protocol = match protover {
            None => None,
            Some(2) => Some(Protocol::Resp2),
            Some(3) => Some(Protocol::Resp3),
            Some(_) => return Frame::error("NOPROTO unsupported protocol version"),
        };
        if let Some((user, pass)) = auth {
            let reply = self.auth(conn, Some(&user), &pass);
            if reply.is_error() {
                return reply;
            }
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return Frame::Null;
        };
        if !c.authenticated {
            return Frame::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(p) = protocol {
            c.protocol = p;
        }
        if let Some(name) = setname {
            c.name = (!name.is_empty()).then_some(name);
        }
        let proto = if c.protocol == Protocol::Resp3 { 3 } else { 2 };
        let mode = if self.sole_voter() {
            "standalone"
        } else {
            "cluster"
        };
        let role = if self.is_leader() {
            "master"
        } else {
            "replica"
        };
        Frame::Map(vec![
            (Frame::text("server"), Frame::text("redis")),
            (Frame::text("version"), Frame::text(REDIS_COMPAT_VERSION)),
            (Frame::text("proto"), Frame::Integer(proto)),
            (
                Frame::text("id"),
                Frame::Integer(i64::try_from(conn.0).unwrap_or(i64::MAX)),
            ),
            (Frame::text("mode"), Frame::text(mode)),
            (Frame::text("role"), Frame::text(role)),
            (Frame::text("modules"), info::module_list()),
        ])
    }

    fn auth(&mut self, conn: ConnId, user: Option<&[u8]>, password: &[u8]) -> Frame {
        let Some(required) = &self.config.requirepass else {
            return Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        };
        let user_ok = user.is_none_or(|u| u == b"default");
        // Compare in time independent of where the first difference is.
        let pass_ok = required.len() == password.len()
            && required
                .iter()
                .zip(password)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if user_ok && pass_ok {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.authenticated = true;
            }
            Frame::ok()
        } else {
            Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
        }
    }

    /// `CONFIG SET`: cluster-wide settings (CONFIG_UPDATE) go through the log like a write,
    /// so every node applies them; node-local settings come from the config file and flags.
    fn config_set(
        &mut self,
        conn: ConnId,
        pairs: Vec<(String, Bytes)>,
        unix: UnixMillis,
    ) -> Option<Frame> {
        let mut cmds = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !crate::db::meta::is_setting(&name) {
                let cluster: Vec<&str> =
                    crate::db::meta::SETTINGS.iter().map(|(n, _)| *n).collect();
                return Some(Frame::error(format!(
                    "ERR CONFIG SET {name}: not a cluster-wide setting; change node settings in the config file or flags and restart (cluster-wide: {})",
                    cluster.join(", ")
                )));
            }
            match crate::db::meta::validate(&name, &value) {
                Ok(value) => cmds.push(WriteCmd::Meta(cmd::MetaWrite::Config { name, value })),
                Err(e) => return Some(Frame::error(e)),
            }
        }
        self.write(conn, cmds, ReplyShape::Single, unix);
        None
    }

    fn config_get(&self, patterns: &[Bytes]) -> Frame {
        let mut pairs = Vec::new();
        let meta = self.db.meta();
        let cluster = crate::db::meta::SETTINGS.iter().map(|(n, _)| {
            (
                (*n).to_string(),
                meta.setting(n).unwrap_or_default().to_string(),
            )
        });
        for (name, value) in self.config.settings.iter().cloned().chain(cluster) {
            if patterns
                .iter()
                .any(|p| crate::db::glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
            {
                pairs.push((Frame::text(name), Frame::text(value)));
            }
        }
        Frame::Map(pairs)
    }

    fn client_line(&self, id: ConnId) -> String {
        let Some(c) = self.conns.get(&id) else {
            return String::new();
        };
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let age = self.now.saturating_since(c.created).as_secs();
        let idle = self.now.saturating_since(c.last_active).as_secs();
        let kind = match c.kind {
            ConnKind::Tcp => "tcp",
            ConnKind::Zmq => "zmq",
        };
        let flags = match (c.txn.queuing(), c.readonly) {
            (true, _) => "x",
            (false, true) => "r",
            (false, false) => "N",
        };
        let resp = if c.protocol == Protocol::Resp3 { 3 } else { 2 };
        let (sub, psub) = self.pubsub.counts(id);
        let flags = if sub + psub > 0 && flags == "N" {
            "P"
        } else {
            flags
        };
        format!(
            "id={} addr={} laddr= fd=-1 name={} age={age} idle={idle} flags={flags} db=0 sub={sub} psub={psub} ssub=0 multi={} watch={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll={} omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={resp} lib-name={} lib-ver={} transport={kind} pending-writes={} batch={}",
            id.0,
            c.addr,
            text(&c.name),
            c.txn.queued(),
            c.txn.watched(),
            c.deferred.len(),
            c.last_cmd,
            text(&c.lib_name),
            text(&c.lib_ver),
            c.writes + c.reads,
            c.batch.len(),
        )
    }
}

fn getkeys(args: &[Bytes]) -> Frame {
    let Some(name) = args.first() else {
        return Frame::error(CommandError::Syntax.to_string());
    };
    let Some(spec) = cmd::lookup(name) else {
        return Frame::error("ERR Invalid command specified");
    };
    if !spec.arity_ok(args.len()) {
        return Frame::error("ERR Invalid number of arguments specified for command");
    }
    let keys = spec.key_positions(args.len());
    if keys.is_empty() {
        return Frame::error("ERR The command has no key arguments");
    }
    Frame::Array(
        keys.into_iter()
            .filter_map(|i| args.get(i))
            .map(|k| Frame::Bulk(k.clone()))
            .collect(),
    )
}
