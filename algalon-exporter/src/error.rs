//! Start-up errors: each is printed as one line on stderr and the process
//! exits non-zero.

/// Why the exporter could not start (or a reload could not be applied).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--kubernetes` could not start (a bad allowlist pattern, no thread).
    #[error("--kubernetes: {0}")]
    Kubernetes(String),

    /// NVML, the collectors CSV or a device selector (the core's message is
    /// already complete and says what to do).
    #[error("{0}")]
    Core(#[from] algalon_core::Error),

    /// The web config file is unreadable, malformed or inconsistent.
    #[error("{0}")]
    WebConfig(String),

    /// The listen address does not parse or resolve.
    #[error("invalid --address {address:?}: {reason}")]
    Address {
        /// As given.
        address: String,
        /// What is wrong.
        reason: String,
    },

    /// The socket could not be bound.
    #[error("cannot listen on {address}: {source}{hint}")]
    Bind {
        /// The resolved address.
        address: String,
        /// The operating system's error.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },

    /// `--web-systemd-socket` without a usable socket from systemd.
    #[error("--web-systemd-socket: {0}")]
    SystemdSocket(String),

    /// The runtime or a thread could not be started.
    #[error("cannot start {what}: {source}")]
    Runtime {
        /// What was being started.
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl StartError {
    /// A web config error about `path` (and a line, when known).
    pub fn web(
        path: &std::path::Path,
        line: Option<usize>,
        message: impl std::fmt::Display,
    ) -> Self {
        match line {
            Some(line) => {
                StartError::WebConfig(format!("web config {}:{line}: {message}", path.display()))
            }
            None => StartError::WebConfig(format!("web config {}: {message}", path.display())),
        }
    }

    /// The message as lines for stderr: one per bad row of a collectors
    /// file, else exactly one.
    pub fn lines(&self) -> Vec<String> {
        match self {
            StartError::Core(e) => e.lines().iter().map(|l| fold(l)).collect(),
            other => vec![other.one_line()],
        }
    }

    /// The message as exactly one line (newlines in nested messages folded).
    pub fn one_line(&self) -> String {
        fold(&self.to_string())
    }
}

/// `text` on one line: its lines trimmed and joined with `; `.
fn fold(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
