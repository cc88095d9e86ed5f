//! Tests of every matcher, line patterns and goss's type conversions.

use super::*;
use serde_json::json;

fn m(yaml: &str, text: bool) -> Matcher {
    let node = image_core::yaml::parse("g.yaml", yaml).unwrap();
    Matcher::from_node(&node, text).unwrap_or_else(|d| panic!("{yaml}: {d}"))
}

fn ok(yaml: &str, found: Value) -> bool {
    m(yaml, false).check(&found).ok
}

#[test]
fn plain_values_with_type_conversion() {
    assert!(ok("true", json!(true)));
    assert!(!ok("false", json!(true)));
    assert!(ok("\"0644\"", json!("0644")));
    assert!(ok("0644", json!("0644"))); // unquoted mode
    assert!(ok("644", json!("0644")));
    assert!(!ok("\"0600\"", json!("0644")));
    assert!(ok("0", json!(0)));
    assert!(ok("\"0\"", json!(0))); // uid as a string
    assert!(ok("1000", json!("1000")));
    assert!(ok("\"1\"", json!("1")));
    assert!(ok("1.5", json!("1.5")));
    assert!(!ok("\"1\"", json!("01"))); // two strings compare exactly
    assert!(ok("\"true\"", json!(true)));
    assert!(!ok("x", json!(["x"])));
    assert!(!ok("~", json!("")));
}

#[test]
fn lists_are_contain_elements() {
    assert!(ok("[a, b]", json!(["b", "c", "a"])));
    assert!(!ok("[a, d]", json!(["b", "c", "a"])));
    assert!(!ok("[a, a]", json!(["a"]))); // no duplicates (goss v0.4)
    assert!(ok("[{have-prefix: r}]", json!(["root"])));
    assert!(ok("[]", json!([])));
    assert!(!m("[a]", false).check(&json!("a")).ok);
}

#[test]
fn string_matchers() {
    assert!(ok("{equal: abc}", json!("abc")));
    assert!(!ok("{equal: abc}", json!("abcd")));
    assert!(ok("{equal: [1, 2]}", json!([1, 2])));
    assert!(!ok("{equal: [1, 2]}", json!([2, 1])));
    assert!(ok("{have-prefix: ab}", json!("abc")));
    assert!(!ok("{have-prefix: bc}", json!("abc")));
    assert!(ok("{have-suffix: bc}", json!("abc")));
    assert!(ok("{contain-substring: b}", json!("abc")));
    assert!(!ok("{contain-substring: z}", json!("abc")));
    assert!(ok("{match-regexp: '^a.c$'}", json!("abc")));
    assert!(!ok("{match-regexp: '^b'}", json!("abc")));
    assert!(ok("{have-prefix: '1.30'}", json!("1.30.2-1.1")));
}

#[test]
fn collection_matchers() {
    let l = json!(["a", "b", "c"]);
    assert!(ok("{contain-element: b}", l.clone()));
    assert!(!ok("{contain-element: z}", l.clone()));
    assert!(ok("{contain-element: {have-prefix: c}}", l.clone()));
    assert!(ok("{contain-elements: [c, a]}", l.clone()));
    assert!(!ok("{contain-elements: [c, z]}", l.clone()));
    assert!(ok("{consist-of: [c, b, a]}", l.clone()));
    assert!(!ok("{consist-of: [a, b]}", l.clone()));
    assert!(!ok("{consist-of: [a, b, b]}", l.clone()));
    assert!(ok("{have-len: 3}", l.clone()));
    assert!(ok("{have-len: 3}", json!("abc")));
    assert!(!ok("{have-len: 2}", l));
    assert!(ok("{have-key: k}", json!({"k": 1})));
    assert!(ok("{have-key: {have-prefix: k}}", json!({"kk": 1})));
    assert!(!ok("{have-key: z}", json!({"k": 1})));
    // goss's to-array transform: a string is a list of its lines.
    assert!(m("{contain-element: a}", false).check(&json!("a")).ok);
    let o = m("{contain-element: a}", false).check(&json!(5));
    assert!(!o.ok && o.detail.is_some());
}

#[test]
fn numeric_matchers_convert_strings() {
    assert!(ok("{gt: 1}", json!(2)));
    assert!(!ok("{gt: 2}", json!(2)));
    assert!(ok("{ge: 2}", json!("2")));
    assert!(ok("{lt: 500}", json!(0)));
    assert!(ok("{le: 1.5}", json!("1.5")));
    assert!(ok("{lt: \"10\"}", json!(9)));
    assert!(!ok("{lt: 10}", json!("x")));
}

#[test]
fn logic_matchers() {
    assert!(ok("{not: {equal: a}}", json!("b")));
    assert!(!ok("{not: a}", json!("a")));
    assert!(ok(
        "{and: [{have-prefix: a}, {have-suffix: c}]}",
        json!("abc")
    ));
    assert!(!ok(
        "{and: [{have-prefix: a}, {have-suffix: x}]}",
        json!("abc")
    ));
    assert!(ok("{or: [x, abc]}", json!("abc")));
    assert!(!ok("{or: [x, y]}", json!("abc")));
    // goss's documented example: 3 kernels, none of them 4.1.0.
    let kernels = json!(["4.1.1", "4.2.0", "5.0.0"]);
    assert!(ok(
        "{and: [{have-len: 3}, {not: {contain-element: \"4.1.0\"}}]}",
        kernels
    ));
}

#[test]
fn semver_constraints() {
    assert!(ok("{semver-constraint: '>=1.28.0'}", json!("1.30.2-1.1")));
    assert!(ok(
        "{semver-constraint: '>=1.28.0, <1.31'}",
        json!(["1.30.2", "1.29.0"])
    ));
    assert!(!ok(
        "{semver-constraint: '>=1.28.0'}",
        json!(["1.30.2", "1.27.0"])
    ));
    assert!(ok("{semver-constraint: '~1.30'}", json!("1:1.30.9-00")));
    assert!(ok("{semver-constraint: '1.30.x'}", json!("1.30.9")));
    assert!(ok("{semver-constraint: '<1.0 || >=2.0'}", json!("2.1")));
    assert!(ok("{semver-constraint: '!=1.2.3'}", json!("1.2.4")));
    assert!(ok("{semver-constraint: '> 1.0 < 2.0'}", json!("1.5")));
    assert!(semver_satisfies(">=1.2.3", "v1.2.3").unwrap());
    assert!(semver_satisfies("^1.2", "1.9.0").unwrap());
    assert!(!semver_satisfies("^1.2", "2.0.0").unwrap());
    assert!(semver_satisfies("nonsense", "1.0").is_err());
    assert!(semver_satisfies(">1", "not-a-version").is_err());
}

#[test]
fn line_patterns() {
    let text = json!("found\n!alsofound\nport 22\n");
    let pm = m(
        "[found, /fou.d/, \"\\\\!alsofound\", \"!missing\", \"!/mis.ing/\", /^port \\d+$/]",
        true,
    );
    assert!(pm.check(&text).ok, "{:?}", pm.check(&text));
    let o = m("[found, nothere, \"!found\"]", true).check(&text);
    assert!(!o.ok);
    assert_eq!(
        o.detail.as_deref(),
        Some("patterns not found: [nothere, !found]")
    );
    // goss: a single string equals the whole text; advanced matchers work
    // on the whole text.
    assert!(!m("found", true).check(&text).ok);
    assert!(m("\"\"", true).check(&json!("")).ok);
    assert!(!m("\"\"", true).check(&json!("err\n")).ok);
    assert!(m("{contain-substring: \"22\\n\"}", true).check(&text).ok);
    assert!(m("{have-patterns: [found]}", true).check(&text).ok);
    assert!(m("{not: {contain-substring: xyz}}", true).check(&text).ok);
    assert!(m("[]", true).check(&json!("")).ok);
    assert!(m("[\"!/./\"]", true).check(&json!("")).ok);
}

#[test]
fn bad_matchers_name_the_place() {
    let node = image_core::yaml::parse("g.yaml", "a: 1\nb: {have-prefx: x}\n").unwrap();
    let d = Matcher::from_node(node.get("b").unwrap(), false).unwrap_err();
    assert_eq!(d.location.as_ref().unwrap().line, 2);
    assert!(d.message.contains("unknown matcher `have-prefx`"));
    assert_eq!(d.help.as_deref(), Some("did you mean `have-prefix`?"));
    let node = image_core::yaml::parse("g.yaml", "{match-regexp: '('}").unwrap();
    assert!(Matcher::from_node(&node, false).is_err());
    let node = image_core::yaml::parse("g.yaml", "{gt: 1, lt: 2}").unwrap();
    assert!(Matcher::from_node(&node, false).is_err());
    let node = image_core::yaml::parse("g.yaml", "{have-len: -1}").unwrap();
    assert!(Matcher::from_node(&node, false).is_err());
    let node = image_core::yaml::parse("g.yaml", "[\"/(/\"]").unwrap();
    assert!(Matcher::from_node(&node, true).is_err());
}

#[test]
fn expectations_print_as_goss_json() {
    assert_eq!(m("{lt: 500}", false).to_json(), json!({"lt": 500}));
    assert_eq!(
        m("[a, {have-prefix: b}]", false).to_json(),
        json!(["a", {"have-prefix": "b"}])
    );
    assert_eq!(m("\"0644\"", false).to_string(), "\"0644\"");
}

/// goss's documented gjson example (docs/gossfile.md), with the JSON made
/// valid.
#[test]
fn gjson_paths_each_pass_their_matcher() {
    let doc =
        json!(r#"{"foo": "bar", "moo": {"nested": "cow"}, "count": "15", "list": [1, 2, 3]}"#);
    let good = "{gjson: {moo.nested: cow, foo: {have-prefix: b}, count: {le: 25}, \
                '@this': {have-key: foo}, moo: {and: [{have-key: nested}, {not: {have-key: nested2}}]}, \
                list.#: 3, list: {contain-element: 2}, 'list.1': 2}}";
    let o = m(good, false).check(&doc);
    assert!(o.ok, "{o:?}");
    // Text properties (stdout, body) take gjson as a whole-text matcher.
    assert!(m(good, true).check(&doc).ok);
    let o = m("{gjson: {foo: baz}}", false).check(&doc);
    assert!(!o.ok);
    assert!(o.detail.unwrap().contains("gjson `foo`"));
    let o = m("{gjson: {nope.x: 1}}", false).check(&doc);
    assert_eq!(o.detail.as_deref(), Some("gjson: path not found: nope.x"));
    let o = m("{gjson: {foo: bar}}", false).check(&json!("{not json"));
    assert_eq!(o.detail.as_deref(), Some("gjson: invalid JSON"));
    assert!(!m("{gjson: {foo: bar}}", false).check(&json!(5)).ok);
    assert_eq!(
        m("{gjson: {a.b: {gt: 1}}}", false).to_json(),
        json!({"gjson": {"a.b": {"gt": 1}}})
    );
    let node = image_core::yaml::parse("g.yaml", "{gjson: [a]}").unwrap();
    assert!(Matcher::from_node(&node, false).is_err());
}

/// goss's transforms: string matchers join a list with newlines, element
/// matchers split a string into lines.
#[test]
fn transforms_as_goss() {
    assert!(ok("{contain-element: b}", json!("a\nb\nc")));
    assert!(!ok("{contain-element: d}", json!("a\nb\nc")));
    assert!(ok("{contain-elements: [c, a]}", json!("a\nb\nc")));
    assert!(!ok("[c, a]", json!("a\nb\nc"))); // a plain list does not split
    assert_eq!(
        m("{contain-elements: [a]}", false).to_json(),
        json!({"contain-elements": ["a"]})
    );
    assert!(ok("{have-prefix: \"a\\nb\"}", json!(["a", "b"])));
    assert!(ok("{match-regexp: 'a\\nb'}", json!(["a", "b"])));
    assert!(ok("{contain-substring: \"1\\n2\"}", json!([1, 2])));
}

#[test]
fn as_reader_lists_become_patterns() {
    let p = m("[foo, \"!bar\", \"/^b.z$/\"]", false)
        .into_patterns()
        .unwrap();
    assert!(p.check(&json!("foo x\nbaz\n")).ok);
    assert!(!p.check(&json!("foo\nbar\nbaz")).ok);
    assert!(m("[1]", false).into_patterns().is_err());
    assert_eq!(go_fmt_v(&json!(["a", 1, {"k": true}])), "[a 1 map[k:true]]");
}

/// goss's have_patterns.go: regex flags, literal trimming, empty text.
#[test]
fn patterns_as_goss_code_reads_them() {
    let t = json!("Hello World\n/usr/bin\n");
    assert!(m("[\"/hello/i\"]", true).check(&t).ok);
    assert!(!m("[\"/hello/\"]", true).check(&t).ok);
    assert!(m("[\"!/^x/m\"]", true).check(&t).ok);
    // Not a regex: a trailing part that is not flags.
    assert!(m("[\"/usr/bin\"]", true).check(&t).ok);
    // Literal patterns lose every leading `\`, `/` and `!`.
    assert!(m("[\"\\\\/usr\"]", true).check(&t).ok);
    assert!(m("[\"\\\\!World\"]", true).check(&t).ok);
    // Empty text has no line: only "" or a negated pattern holds.
    assert!(m("[\"\"]", true).check(&json!("")).ok);
    assert!(!m("[\"/^$/\"]", true).check(&json!("")).ok);
    assert!(!m("[x]", true).check(&json!("")).ok);
}

/// As gomega: a matcher that cannot compare (a list matcher on a string, a
/// map matcher on a list) is an error, which `not` and `or` do not turn
/// into a match; under `not`/`and`/`or` a list is contain-elements, not
/// line patterns (goss's `negated_basic_reader` case).
#[test]
fn errors_are_not_negated() {
    let text = json!("foo bar\nmoo cow\n");
    let o = m("{not: [foo, '!ftw']}", true).check(&text);
    assert!(!o.ok && o.error, "{o:?}");
    assert!(!m("{not: {have-key: x}}", false).check(&json!(["x"])).ok);
    assert!(
        !m("{or: [{have-key: x}, {contain-element: x}]}", false)
            .check(&json!(["x"]))
            .ok
    );
    assert!(m("{not: {contain-substring: fox}}", true).check(&text).ok);
    assert!(m("{not: {gt: 5}}", false).check(&json!(3)).ok);
}
