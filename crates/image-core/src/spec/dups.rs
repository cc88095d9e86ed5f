//! Warnings for a key given twice in the same mapping (the last one wins,
//! which is rarely what the author meant).

use crate::diag::{Diagnostic, Diagnostics};
use crate::yaml::{Node, Value};

/// Pushes a warning for every duplicate key anywhere in `node`.
pub fn duplicate_key_warnings(node: &Node, diags: &mut Diagnostics) {
    for (first, second) in node.duplicate_keys() {
        diags.push(
            Diagnostic::warning(
                second.loc.clone(),
                format!(
                    "key `{}` is given twice in this mapping; the last one wins",
                    second.as_key().unwrap_or_default()
                ),
            )
            .with_help(format!("first given at line {}", first.loc.line)),
        );
    }
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|i| duplicate_key_warnings(i, diags)),
        Value::Map(pairs) => pairs
            .iter()
            .for_each(|(_, v)| duplicate_key_warnings(v, diags)),
        _ => {}
    }
}
