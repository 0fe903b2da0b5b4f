//! Errors a client's command can get, with Redis's exact texts.

/// Why a command was refused. `Display` is the text after `-` on the wire, starting with the
/// error code (`ERR`, `WRONGTYPE`, `NOAUTH`...), exactly as Redis words it so client libraries
/// and users' searches recognise it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command name is not in the table.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand { name: String, args: String },
    /// The argument count does not satisfy the command's arity.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// A container command (CLIENT, CONFIG, COMMAND) got a subcommand it does not have.
    #[error("ERR unknown subcommand '{sub}'. Try {container} HELP.")]
    UnknownSubcommand { container: String, sub: String },
    /// Options that do not parse or do not go together.
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// An integer result would leave the `i64` range.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// The key holds a value of another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The connection must authenticate first.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// Any other refusal; the text includes its code (e.g. `ERR TSDB: invalid timestamp`).
    #[error("{0}")]
    Other(String),
}

impl CommandError {
    /// An error with a custom text; `msg` starts with its code.
    pub fn other(msg: impl Into<String>) -> Self {
        Self::Other(msg.into())
    }

    /// The unknown-command error as Redis words it: up to the first 128 chars of each argument.
    pub fn unknown_command(name: &[u8], args: &[bytes::Bytes]) -> Self {
        let mut listed = String::new();
        for arg in args.iter().take(16) {
            let text = String::from_utf8_lossy(&arg[..arg.len().min(128)]);
            listed.push('\'');
            listed.push_str(&text);
            listed.push_str("' ");
        }
        Self::UnknownCommand {
            name: String::from_utf8_lossy(&name[..name.len().min(128)]).into_owned(),
            args: listed,
        }
    }
}
