//! `matching`: checks a value written in the gossfile itself (`content`,
//! usually a template expression) against `matches`; nothing is run on the
//! target. With `as-reader: true` the content is read as text (as Go's
//! `%v` prints it), and a list of strings in `matches` is line patterns.

use async_trait::async_trait;

use super::{Observed, Probe, Property, Resource, ResourceSpec};

/// The `matching` resource type.
pub struct Matching;

const PROPS: &[Property] = &[Property::value("matches")];

#[async_trait]
impl Resource for Matching {
    fn key(&self) -> &'static str {
        "matching"
    }
    fn type_name(&self) -> &'static str {
        "Matching"
    }
    fn properties(&self) -> &'static [Property] {
        PROPS
    }
    fn settings(&self) -> &'static [&'static str] {
        &["content", "as-reader"]
    }
    async fn observe(&self, _probe: &Probe<'_>, specs: &[&ResourceSpec]) -> Vec<Observed> {
        specs
            .iter()
            .map(|s| {
                let mut o = Observed::default();
                let content = s.settings.get("content").cloned().unwrap_or_default();
                let content = if s.setting_bool("as-reader") {
                    serde_json::Value::String(crate::matcher::go_fmt_v(&content))
                } else {
                    content
                };
                o.set("matches", content);
                o
            })
            .collect()
    }
}
