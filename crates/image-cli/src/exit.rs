//! Exit codes of `image-cli`, one place for the code and its documentation.

use std::process::ExitCode;

/// How `image-cli` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything worked.
    Ok,
    /// 1: a build or verification failed.
    Failed,
    /// 2: bad input: command line, image definition, var files.
    BadInput,
    /// 3: `verify` gave up: checks still failing at `--retry-timeout` (as goss).
    RetryTimeout,
    /// 78: `verify` got a bad gossfile (as goss).
    BadGossfile,
    /// 130: interrupted (Ctrl-C); resources created so far were cleaned up.
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::BadInput => 2,
            Exit::RetryTimeout => 3,
            Exit::BadGossfile => 78,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Shown after `--help` of every command.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    a build or verification failed
  2    bad input (command line, image definition, var files)
  3    verify: checks still failing when --retry-timeout ran out
  78   verify: bad gossfile
  130  interrupted";
