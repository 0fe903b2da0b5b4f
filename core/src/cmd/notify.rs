//! Keyspace-notification classes (`notify-keyspace-events`): the flag letters Redis defines,
//! parsed and printed in Redis's canonical order.
//!
//! Vocabulary, not delivery: `db::meta` validates the setting with it and `node::pubsub`
//! decides which events to deliver. Part of the command layer, so it imports nothing from
//! `db`, `ts`, `state` or `node`.

/// Keyspace event classes, as Redis numbers them (`notify-keyspace-events`).
pub(crate) const KEYSPACE: u32 = 1 << 0; // K
pub(crate) const KEYEVENT: u32 = 1 << 1; // E
pub(crate) const GENERIC: u32 = 1 << 2; // g
pub(crate) const STRING: u32 = 1 << 3; // $
const LIST: u32 = 1 << 4; // l
const SET: u32 = 1 << 5; // s
const HASH: u32 = 1 << 6; // h
const ZSET: u32 = 1 << 7; // z
pub(crate) const EXPIRED: u32 = 1 << 8; // x
const EVICTED: u32 = 1 << 9; // e
const STREAM: u32 = 1 << 10; // t
const KEY_MISS: u32 = 1 << 11; // m
pub(crate) const MODULE: u32 = 1 << 12; // d
const NEW: u32 = 1 << 13; // n
/// `A`: every class but key misses and new keys.
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

const CLASS_CHARS: [(u8, u32); 11] = [
    (b'g', GENERIC),
    (b'$', STRING),
    (b'l', LIST),
    (b's', SET),
    (b'h', HASH),
    (b'z', ZSET),
    (b'x', EXPIRED),
    (b'e', EVICTED),
    (b't', STREAM),
    (b'd', MODULE),
    (b'n', NEW),
];

/// Parses a `notify-keyspace-events` value; `None` for a character Redis does not know.
pub(crate) fn notify_flags(text: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &c in text {
        flags |= match c {
            b'A' => ALL,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b'm' => KEY_MISS,
            _ => CLASS_CHARS.iter().find(|(ch, _)| *ch == c)?.1,
        };
    }
    Some(flags)
}

/// The canonical text of `flags`, as Redis's `CONFIG GET notify-keyspace-events` shows it.
pub(crate) fn notify_flags_text(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    }
    for (c, f) in CLASS_CHARS {
        if (flags & ALL != ALL || f & ALL == 0) && flags & f != 0 {
            s.push(char::from(c));
        }
    }
    for (c, f) in [('K', KEYSPACE), ('E', KEYEVENT), ('m', KEY_MISS)] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_like_redis() {
        let text = |s: &str| notify_flags(s.as_bytes()).map(notify_flags_text);
        assert_eq!(text("KEA").as_deref(), Some("AKE"));
        assert_eq!(text("Kg$").as_deref(), Some("g$K"));
        assert_eq!(text("Ed").as_deref(), Some("dE"));
        assert_eq!(text("An").as_deref(), Some("An"));
        assert_eq!(text("AKEm").as_deref(), Some("AKEm"));
        assert_eq!(text("").as_deref(), Some(""));
        assert_eq!(text("Kw"), None);
        assert_eq!(text("g$lshzxetd").as_deref(), Some("A"));
    }
}
