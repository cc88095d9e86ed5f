//! What one tool did with one task, in a shape both tools' outputs map to:
//! where the task is written (file and line of its first line), its status
//! as ansible counts it, and its result (what `register` stores; loop tasks
//! hold one result per item under `results`).

use serde_json::Value as Json;

/// A task's status, as in ansible's recap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Ran, changed nothing.
    Ok,
    /// Ran, changed something.
    Changed,
    /// Failed (also when ignored or rescued).
    Failed,
    /// Not run (condition false, every loop item skipped).
    Skipped,
}

impl Status {
    /// The recap word.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

    /// The task's status from its loop items' (ansible's rule: failed if one
    /// failed, skipped if all skipped, changed if one changed).
    pub fn of_items(items: &[Status]) -> Status {
        if items.contains(&Status::Failed) {
            Status::Failed
        } else if !items.is_empty() && items.iter().all(|s| *s == Status::Skipped) {
            Status::Skipped
        } else if items.contains(&Status::Changed) {
            Status::Changed
        } else {
            Status::Ok
        }
    }
}

/// One task run by one tool.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The file the task is written in (absolute).
    pub file: String,
    /// The 1-based line of the task's first line.
    pub line: usize,
    /// The task's name as the tool printed it.
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// The module or action (ansible's side only; empty for image-cli).
    pub action: String,
    /// The result; for a loop `{"results": [item results]}`.
    pub result: Json,
}

impl Observed {
    /// `file:line`, the key both tools agree on.
    pub fn loc(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Splits `file:line[:col]` into the file and the line.
pub fn split_loc(loc: &str) -> Option<(String, usize)> {
    let mut parts: Vec<&str> = loc.rsplitn(3, ':').collect();
    parts.reverse();
    match parts.as_slice() {
        [file, line, col] if col.parse::<usize>().is_ok() => {
            if let Ok(l) = line.parse() {
                return Some((file.to_string(), l));
            }
            // `file:line` where file itself contains a colon.
            col.parse().ok().map(|l| (format!("{file}:{line}"), l))
        }
        [file, line] => line.parse().ok().map(|l| (file.to_string(), l)),
        _ => None,
    }
}
