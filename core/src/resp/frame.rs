//! The RESP value model: every RESP2 and RESP3 type.

use bytes::Bytes;

/// The protocol a connection speaks; `HELLO 3` switches a connection to RESP3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// One RESP value.
///
/// Replies are built in the richest (RESP3) form; the encoder lowers them for a RESP2
/// connection the way Redis does: a map becomes a flat array of key, value pairs, a set an
/// array, a double a bulk string, a boolean the integer 1 or 0, a big number or verbatim string
/// a bulk string, a push an array, a bulk error a simple error, and attributes are dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(Bytes),
    /// `-ERR ...`: the text after the dash, starting with the error code (`ERR`, `WRONGTYPE`).
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello`
    Bulk(Bytes),
    /// The null bulk string: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// The null array: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// `*2\r\n...`
    Array(Vec<Self>),
    /// RESP3 `%`: ordered key, value pairs.
    Map(Vec<(Self, Self)>),
    /// RESP3 `~`
    Set(Vec<Self>),
    /// RESP3 `,1.5`, also `,inf`, `,-inf` and `,nan`.
    Double(f64),
    /// RESP3 `#t` / `#f`
    Boolean(bool),
    /// RESP3 `(` followed by an arbitrary-precision integer in decimal.
    BigNumber(Bytes),
    /// RESP3 `=`: a three-byte format such as `txt` or `mkd` and the text.
    Verbatim { format: [u8; 3], text: Bytes },
    /// RESP3 `!`: an error with a binary-safe length-prefixed body.
    BulkError(Bytes),
    /// RESP3 `>`: out-of-band data.
    Push(Vec<Self>),
    /// RESP3 `|`: attributes that annotate the value that follows them.
    Attribute {
        attributes: Vec<(Self, Self)>,
        value: Box<Self>,
    },
}

impl Frame {
    /// `+OK`
    pub fn ok() -> Self {
        Self::Simple(Bytes::from_static(b"OK"))
    }

    /// Whether this is [`Frame::ok`]'s `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Simple(s) if s.as_ref() == b"OK")
    }

    pub fn simple(s: &'static str) -> Self {
        Self::Simple(Bytes::from_static(s.as_bytes()))
    }

    /// An error reply; `msg` starts with its code, e.g. `ERR syntax error`.
    pub fn error(msg: impl Into<String>) -> Self {
        Self::Error(Bytes::from(msg.into()))
    }

    pub fn bulk(b: impl Into<Bytes>) -> Self {
        Self::Bulk(b.into())
    }

    /// A bulk string holding `s` as UTF-8.
    pub fn text(s: impl Into<String>) -> Self {
        Self::Bulk(Bytes::from(s.into()))
    }

    /// Structural equality in which NaN equals NaN (`==` on `Frame` follows `f64`, where it does
    /// not): what round-trip tests and the fuzz target compare decoded frames with.
    pub fn same_as(&self, other: &Self) -> bool {
        let all = |x: &[Self], y: &[Self]| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.same_as(q))
        };
        let pairs = |x: &[(Self, Self)], y: &[(Self, Self)]| {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, v), (l, w))| k.same_as(l) && v.same_as(w))
        };
        match (self, other) {
            (Self::Double(x), Self::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
            (Self::Array(x), Self::Array(y))
            | (Self::Set(x), Self::Set(y))
            | (Self::Push(x), Self::Push(y)) => all(x, y),
            (Self::Map(x), Self::Map(y)) => pairs(x, y),
            (
                Self::Attribute {
                    attributes: x,
                    value: v,
                },
                Self::Attribute {
                    attributes: y,
                    value: w,
                },
            ) => pairs(x, y) && v.same_as(w),
            _ => self == other,
        }
    }

    /// Whether this is an error reply (simple or bulk).
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_) | Self::BulkError(_))
    }
}
