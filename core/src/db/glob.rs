//! Redis's glob patterns for `KEYS`, `SCAN MATCH` and `CONFIG GET`: `*`, `?`, `[abc]`,
//! `[^abc]`, `[a-z]` and `\x`, byte-wise.

/// Whether `text` matches `pattern`.
///
/// Classic two-pointer wildcard matching: on a mismatch it backtracks only to the most recent
/// `*`, so a match costs at most `O(pattern * text)` steps whatever the pattern (a recursive
/// matcher takes exponential time on `*a*a*a*...b`).
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let tokens = tokenize(pattern);
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        match tokens.get(pi) {
            Some(Token::Star) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(tok) if tok.matches(text[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => {
                let Some((sp, st)) = star else { return false };
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
        }
    }
    tokens[pi..].iter().all(|t| matches!(t, Token::Star))
}

enum Token<'a> {
    Star,
    Any,
    Byte(u8),
    /// A `[...]` class: its body (without brackets) and whether it was negated with `^`.
    Class(&'a [u8], bool),
}

impl Token<'_> {
    fn matches(&self, b: u8) -> bool {
        match self {
            Token::Star => true,
            Token::Any => true,
            Token::Byte(c) => *c == b,
            Token::Class(body, negate) => class(body, b) != *negate,
        }
    }
}

fn tokenize(mut p: &[u8]) -> Vec<Token<'_>> {
    let mut out = Vec::with_capacity(p.len());
    while let Some((&c, rest)) = p.split_first() {
        p = rest;
        out.push(match c {
            b'*' => Token::Star,
            b'?' => Token::Any,
            b'\\' if !p.is_empty() => {
                let t = Token::Byte(p[0]);
                p = &p[1..];
                t
            }
            b'[' => {
                let negate = p.first() == Some(&b'^');
                if negate {
                    p = &p[1..];
                }
                let end = class_end(p);
                let body = &p[..end];
                p = &p[(end + 1).min(p.len())..];
                Token::Class(body, negate)
            }
            _ => Token::Byte(c),
        });
    }
    out
}

/// The index of the `]` closing a class body (an unclosed class runs to the end, as in Redis).
fn class_end(p: &[u8]) -> usize {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 2,
            b']' => return i,
            _ => i += 1,
        }
    }
    p.len()
}

/// Whether `b` is in a class body (`abc`, `a-z`, `\\]`).
fn class(mut p: &[u8], b: u8) -> bool {
    let mut hit = false;
    while !p.is_empty() {
        match p {
            [b'\\', c, rest @ ..] => {
                hit |= *c == b;
                p = rest;
            }
            [lo, b'-', hi, rest @ ..] => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                hit |= (lo..=hi).contains(&b);
                p = rest;
            }
            [c, rest @ ..] => {
                hit |= *c == b;
                p = rest;
            }
            [] => break,
        }
    }
    hit
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_semantics() {
        let yes = [
            ("*", "anything"),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h\\*llo", "h*llo"),
            ("", ""),
            ("stock:*:ticks", "stock:AAPL:ticks"),
            ("[z-a]", "m"),
        ];
        let no = [
            ("h?llo", "hllo"),
            ("h[ae]llo", "hillo"),
            ("h[^e]llo", "hello"),
            ("a", "ab"),
            ("h\\*llo", "hello"),
            ("", "x"),
        ];
        for (p, t) in yes {
            assert!(matches(p.as_bytes(), t.as_bytes()), "{p} should match {t}");
        }
        for (p, t) in no {
            assert!(
                !matches(p.as_bytes(), t.as_bytes()),
                "{p} should not match {t}"
            );
        }
    }

    #[test]
    fn hostile_patterns_stay_bounded() {
        let text = "a".repeat(60);
        // Exponential for a naive recursive matcher; linear-ish here. It must simply finish.
        let hostile = "*a".repeat(30) + "b";
        assert!(!matches(hostile.as_bytes(), text.as_bytes()));
        assert!(matches("*".repeat(100).as_bytes(), b"x"));
        assert!(matches(b"*a*b*", b"xxaxxbxx"));
        assert!(!matches(b"*a*b", b"xxaxxbxxa"));
    }
}
