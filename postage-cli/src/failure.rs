//! [`Failure`]: what went wrong, as one line and an exit status.

use std::process::ExitCode;

/// An error or exception result, a refused command, or nobody answered.
pub(crate) const REFUSED: u8 = 1;
/// No answer in time.
pub(crate) const TIMEOUT: u8 = 2;
/// No broker, a broker's refusal, or bad input.
pub(crate) const CONNECTION_OR_USAGE: u8 = 3;

/// Why a command failed: one line on standard error, and its status.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: u8,
    pub(crate) message: String,
}

impl Failure {
    /// An answer that says no (status 1).
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Failure {
            status: REFUSED,
            message: message.into(),
        }
    }

    /// Bad input, or no broker (status 3).
    pub(crate) fn connection(message: impl Into<String>) -> Self {
        Failure {
            status: CONNECTION_OR_USAGE,
            message: message.into(),
        }
    }

    /// Prints the line and gives the status.
    pub(crate) fn exit(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(self.status)
    }
}

/// A Postage error: a timeout (status 2), or any other failure to reach
/// or use the broker (status 3), as one sentence with its causes.
impl From<postage::Error> for Failure {
    fn from(error: postage::Error) -> Self {
        let status = match error {
            postage::Error::RpcTimeout { .. } => TIMEOUT,
            _ => CONNECTION_OR_USAGE,
        };
        Failure {
            status,
            message: error.report().to_string(),
        }
    }
}

/// What clap could not read: help and version are printed as asked
/// (status 0); a usage error is one line (status 3).
pub(crate) fn usage(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    // The first paragraph of clap's text, on one line.
    let text = error.render().to_string();
    let line = text
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    Failure::connection(format!("{line} (see postage --help)")).exit()
}
