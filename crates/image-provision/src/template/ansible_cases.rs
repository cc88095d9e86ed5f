//! Templates checked against ansible-core 2.19 as the oracle:
//! `ansible_cases.json` holds variables and, for each template, the value
//! ansible-core gave for it as a `debug` task's `msg` (or `{"$fails": true}`
//! when the task failed). The values were produced by running every
//! template as `ansible.builtin.debug: msg=<template>` on localhost with
//! those variables as play vars (ansible-core 2.19, `ignore_errors: true`,
//! a callback printing each task's `msg` as JSON).
//!
//! Each template goes through [`Templater::render`] exactly as a task
//! argument from YAML does; the result must equal ansible's value (numbers
//! compare by value: `2.0` and `2` are the same JSON number for ansible's
//! float results printed by Python).
//!
//! Left out on purpose, as known differences: the `~` of a list or dict
//! (minijinja's text of it, not Python's; minijinja has no hook for
//! operators), `list.count` on a list variable (ansible-core
//! 2.19 answers 0 there, a bug of its lazy lists; a literal list counts),
//! the order of the set filters' results (Python's set order: numbers come
//! out by hash, strings in a random order per run; ours keep first-seen
//! order) and YAML complex keys (a multi-line dict key, `? 'a\n\n  b'`).

use serde_json::Value as Json;

use super::Templater;

fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn templates_render_as_ansible_core_renders_them() {
    let data: Json = serde_json::from_str(include_str!("ansible_cases.json")).expect("valid JSON");
    let vars = data["vars"].as_object().cloned().unwrap_or_default();
    let cases = data["cases"].as_array().cloned().unwrap_or_default();
    assert!(cases.len() > 250, "the corpus is loaded");
    let t = Templater::new();
    let mut failures = Vec::new();
    for case in &cases {
        let (tpl, want) = (case[0].as_str().unwrap_or_default(), &case[1]);
        let ctx = t.context(vars.clone());
        let got = t.render(&Json::String(tpl.to_string()), &ctx);
        let fails = want.get("$fails").is_some();
        match (got, fails) {
            (Ok(g), false) if same(&g, want) => {}
            (Err(_), true) => {}
            (Ok(g), _) => failures.push(format!("{tpl}\n    ansible: {want}\n    ours:    {g}")),
            (Err(e), false) => failures.push(format!(
                "{tpl}\n    ansible: {want}\n    ours:    error {e}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} templates differ from ansible-core:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
