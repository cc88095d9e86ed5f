//! Tests of the Go template engine against Go's documented behaviour.

use super::*;
use serde_json::json;

fn data(vars: Value) -> TemplateData {
    let mut env = BTreeMap::new();
    env.insert("HOME_TEST".to_string(), "/home/x".to_string());
    TemplateData { vars, env }
}

fn r(src: &str, vars: Value) -> String {
    match render("t.yaml", src, &data(vars)) {
        Ok(x) => x.text,
        Err(e) => panic!("{src}: {e}"),
    }
}

fn err(src: &str, vars: Value) -> Diagnostic {
    match render("t.yaml", src, &data(vars)) {
        Ok(x) => panic!("{src}: expected an error, got {:?}", x.text),
        Err(e) => e,
    }
}

#[test]
fn fields_vars_env() {
    let v = json!({"OS": "ubuntu", "n": 3, "f": 1.5, "nested": {"a": {"b": "deep"}}, "list": [1, "x"], "t": true});
    assert_eq!(
        r("{{ .Vars.OS }}-{{.Vars.n}}-{{ .Vars.f }}", v.clone()),
        "ubuntu-3-1.5"
    );
    assert_eq!(r("{{ .Vars.nested.a.b }}", v.clone()), "deep");
    assert_eq!(r("{{ .Env.HOME_TEST }}", v.clone()), "/home/x");
    assert_eq!(r("{{ .Vars.missing }}", v.clone()), "<no value>");
    assert_eq!(
        r(
            "{{ .Vars.list }} {{ .Vars.nested.a }} {{ .Vars.t }}",
            v.clone()
        ),
        "[1 x] map[b:deep] true"
    );
    assert_eq!(r("{{ $.Vars.OS }}", v.clone()), "ubuntu");
    let e = err("a\nb\n{{ .Vars.missing.deeper }}", v);
    assert_eq!(e.location.as_ref().unwrap().line, 3);
    assert!(e.message.contains("nil pointer"), "{}", e.message);
}

#[test]
fn if_else_chains() {
    let src = "{{ if eq .Vars.OS \"ubuntu\" }}deb{{ else if eq .Vars.OS \"amazon\" \"rhel\" }}rpm{{ else }}other{{ end }}";
    assert_eq!(r(src, json!({"OS": "ubuntu"})), "deb");
    assert_eq!(r(src, json!({"OS": "rhel"})), "rpm");
    assert_eq!(r(src, json!({"OS": "arch"})), "other");
    assert_eq!(r("{{ if ne .Vars.a 1 }}y{{ end }}", json!({"a": 2})), "y");
    assert_eq!(
        r(
            "{{ if lt .Vars.a 3 }}y{{ end }}{{ if gt .Vars.a 3 }}n{{ end }}",
            json!({"a": 2})
        ),
        "y"
    );
    assert_eq!(
        r(
            "{{ if le 2 2 }}a{{ end }}{{ if ge \"b\" \"a\" }}b{{ end }}",
            json!({})
        ),
        "ab"
    );
    assert_eq!(
        r(
            "{{ if and .Vars.a .Vars.b }}y{{ else }}n{{ end }}",
            json!({"a": 1, "b": ""})
        ),
        "n"
    );
    assert_eq!(
        r(
            "{{ if or .Vars.a .Vars.b }}y{{ end }}",
            json!({"a": 0, "b": "x"})
        ),
        "y"
    );
    assert_eq!(r("{{ if not .Vars.a }}y{{ end }}", json!({"a": []})), "y");
    // and / or return an operand and short-circuit (the nil field is never evaluated).
    assert_eq!(r("{{ or .Vars.a \"dflt\" }}", json!({"a": ""})), "dflt");
    assert_eq!(
        r("{{ and .Vars.a .Vars.a.b }}", json!({"a": null})),
        "<no value>"
    );
    assert_eq!(
        r("{{ if .Vars.m }}y{{ else }}n{{ end }}", json!({"m": {}})),
        "n"
    );
    // Comparisons of different types are errors, as in Go.
    let e = err("{{ if eq .Vars.a \"1\" }}{{ end }}", json!({"a": 1}));
    assert!(e.message.contains("incompatible types"), "{}", e.message);
}

#[test]
fn range_lists_maps_and_vars() {
    let v = json!({"pkgs": {"kubelet": "1.30.1", "containerd": "1.7"}, "l": ["a", "b"]});
    assert_eq!(
        r("{{ range .Vars.l }}[{{ . }}]{{ end }}", v.clone()),
        "[a][b]"
    );
    assert_eq!(
        r(
            "{{ range $i, $e := .Vars.l }}{{ $i }}={{ $e }} {{ end }}",
            v.clone()
        ),
        "0=a 1=b "
    );
    // Maps iterate in key order.
    assert_eq!(
        r(
            "{{ range $k, $v := .Vars.pkgs }}{{ $k }}:{{ $v }};{{ end }}",
            v.clone()
        ),
        "containerd:1.7;kubelet:1.30.1;"
    );
    assert_eq!(
        r("{{ range $v := .Vars.l }}{{ $v }}{{ end }}", v.clone()),
        "ab"
    );
    assert_eq!(
        r("{{ range .Vars.none }}x{{ else }}empty{{ end }}", v.clone()),
        "empty"
    );
    assert_eq!(r("{{ range 3 }}{{ . }}{{ end }}", v.clone()), "012");
    assert_eq!(
        r("{{ range .Vars.l }}{{ if eq . \"a\" }}{{ continue }}{{ end }}{{ . }}{{ break }}{{ end }}", v.clone()),
        "b"
    );
    // `$` is the root inside range; variables are scoped to their block.
    assert_eq!(
        r("{{ range .Vars.l }}{{ $.Vars.l }}{{ end }}", v.clone()),
        "[a b][a b]"
    );
    let e = err(
        "{{ range .Vars.l }}{{ $x := 1 }}{{ end }}{{ $x }}",
        v.clone(),
    );
    assert!(e.message.contains("undefined variable"), "{}", e.message);
    assert_eq!(
        r(
            "{{ $x := 1 }}{{ range .Vars.l }}{{ $x = . }}{{ end }}{{ $x }}",
            v.clone()
        ),
        "b"
    );
    assert_eq!(
        r("{{ with .Vars.pkgs }}{{ .kubelet }}{{ end }}", v.clone()),
        "1.30.1"
    );
    assert_eq!(
        r(
            "{{ with .Vars.none }}x{{ else with .Vars.l }}{{ index . 1 }}{{ end }}",
            v
        ),
        "b"
    );
}

#[test]
fn index_with_several_keys() {
    let v = json!({
        "OS": "ubuntu", "PROVIDER": "aws",
        "ubuntu": {"aws": {"package": {"curl": ""}, "n": [10, 20]}}
    });
    assert_eq!(
        r(
            "{{ index .Vars .Vars.OS .Vars.PROVIDER \"n\" 1 }}",
            v.clone()
        ),
        "20"
    );
    assert_eq!(
        r("{{ range $name, $vers := index .Vars .Vars.OS .Vars.PROVIDER \"package\" }}{{ $name }}{{ end }}", v.clone()),
        "curl"
    );
    assert_eq!(r("{{ index .Vars \"nope\" }}", v.clone()), "<no value>");
    assert!(err("{{ index .Vars.ubuntu.aws.n 5 }}", v.clone())
        .message
        .contains("out of range"));
    assert!(err("{{ index .Vars.nope \"x\" }}", v)
        .message
        .contains("nil"));
}

#[test]
fn string_functions() {
    let v = json!({"s": "Hello World", "csv": "a,b,c", "l": ["x", "y"], "m": {"k": 1}, "e": ""});
    assert_eq!(
        r(
            "{{ printf \"%s-%d-%05.1f-%q-%v-%x-%t-%%\" \"a\" 7 3.14159 \"q\" .Vars.l 255 true }}",
            v.clone()
        ),
        "a-7-003.1-\"q\"-[x y]-ff-true-%"
    );
    assert_eq!(
        r("{{ printf \"%-4s|%4s|%03d\" \"ab\" \"cd\" 7 }}", v.clone()),
        "ab  |  cd|007"
    );
    assert_eq!(
        r(
            "{{ contains \"World\" .Vars.s }} {{ .Vars.s | contains \"nope\" }}",
            v.clone()
        ),
        "true false"
    );
    assert_eq!(r("{{ regexMatch \"^H.*d$\" .Vars.s }}", v.clone()), "true");
    assert_eq!(
        r("{{ toLower .Vars.s }} {{ .Vars.s | toUpper }}", v.clone()),
        "hello world HELLO WORLD"
    );
    assert_eq!(
        r("{{ $p := split \",\" .Vars.csv }}{{ $p._1 }}", v.clone()),
        "b"
    );
    assert_eq!(r("{{ splitList \",\" .Vars.csv }}", v.clone()), "[a b c]");
    assert_eq!(
        r(
            "{{ join \"+\" .Vars.l }} {{ splitList \",\" .Vars.csv | join \"/\" }}",
            v.clone()
        ),
        "x+y a/b/c"
    );
    assert_eq!(r("{{ default \"d\" .Vars.e }} {{ .Vars.s | default \"d\" }} {{ default \"d\" .Vars.nope }}", v.clone()), "d Hello World d");
    assert_eq!(
        r(
            "{{ hasKey .Vars.m \"k\" }} {{ hasKey .Vars.m \"z\" }}",
            v.clone()
        ),
        "true false"
    );
    assert_eq!(
        r(
            "{{ semverCompare \">=1.28.0\" \"1.30.2\" }} {{ semverCompare \"<1.28\" \"1.30.2\" }}",
            v.clone()
        ),
        "true false"
    );
    assert_eq!(r("{{ len .Vars.l }} {{ len .Vars.s }}", v.clone()), "2 11");
    assert_eq!(r("{{ print \"a\" 1 2 \"b\" }}", v.clone()), "a1 2b");
    assert_eq!(
        r(
            "{{ trim \"  x \" }}|{{ replace \"o\" \"0\" .Vars.s }}",
            v.clone()
        ),
        "x|Hell0 W0rld"
    );
    assert_eq!(r("{{ (index .Vars.l 0) | toUpper }}", v), "X");
}

#[test]
fn trimming_and_comments() {
    let src = "a:\n  {{- /* a comment */ -}}\n  b\n{{- if true }}\nc\n{{- end }}\n";
    assert_eq!(r(src, json!({})), "a:b\nc\n");
    assert_eq!(r("x {{- 3 -}} y", json!({})), "x3y");
    assert_eq!(r("{{ 1 }} {{- 2 }}", json!({})), "12");
}

#[test]
fn unknown_functions_and_syntax_errors_name_the_line() {
    let e = err(
        "package:\n  curl: {}\n{{ frobnicate .Vars.x }}\n",
        json!({}),
    );
    assert_eq!(e.location.as_ref().unwrap().to_string(), "t.yaml:3:1");
    assert!(
        e.message.contains("function \"frobnicate\" not defined"),
        "{}",
        e.message
    );
    assert!(e.help.unwrap().contains("regexMatch"));
    assert_eq!(
        err("a\n{{ if .Vars.x }}\nb\n", json!({}))
            .location
            .unwrap()
            .line,
        2
    );
    assert_eq!(err("\n\n{{ end }}", json!({})).location.unwrap().line, 3);
    assert_eq!(err("{{ .Vars.x ", json!({})).location.unwrap().line, 1);
    assert_eq!(
        err("\n{{ \"unterminated }}", json!({}))
            .location
            .unwrap()
            .line,
        2
    );
    assert!(err("{{ .Vars.s 1 }}", json!({"s": "x"}))
        .message
        .contains("non-function"));
    assert!(err("{{ printf }}", json!({}))
        .message
        .contains("wrong number"));
}

#[test]
fn line_map_follows_ranges() {
    let src = "package:\n{{ range $k, $v := .Vars.p }}\n  {{ $k }}:\n    installed: true\n{{ end }}\nservice:\n  ssh: {}\n";
    let out = render("t.yaml", src, &data(json!({"p": {"a": 1, "b": 2}}))).unwrap();
    let lines: Vec<&str> = out.text.lines().collect();
    let svc = lines.iter().position(|l| *l == "service:").unwrap() + 1;
    assert_eq!(out.source_line(svc), 6);
    let b = lines.iter().position(|l| l.trim() == "b:").unwrap() + 1;
    assert_eq!(out.source_line(b), 3);
    assert_eq!(out.source_line(b + 1), 4);
    let plain = render("t.yaml", "a: 1\nb: 2\n", &data(json!({}))).unwrap();
    assert!(plain.is_identity());
}

#[test]
fn define_template_and_block() {
    let src = "{{define \"pkg\"}}  {{.}}: {installed: true}\n{{end}}package:\n{{template \"pkg\" \"curl\"}}{{template \"pkg\" .Vars.p}}{{block \"t\" 3}}n={{.}} root={{$}}{{end}}\n";
    let out = render(
        "g.yaml",
        src,
        &TemplateData::new(serde_json::json!({"p": "jq"})),
    )
    .unwrap();
    assert_eq!(
        out.text,
        "package:\n  curl: {installed: true}\n  jq: {installed: true}\nn=3 root=3\n"
    );
    let e = render(
        "g.yaml",
        "a\n{{template \"nope\"}}\n",
        &TemplateData::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("g.yaml:2:1: error: template: no such template \"nope\""),
        "{e}"
    );
    // Recursion is bounded.
    let e = render(
        "g.yaml",
        "{{define \"r\"}}{{template \"r\"}}{{end}}{{template \"r\"}}",
        &TemplateData::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("maximum template depth"), "{e}");
    let e = render("g.yaml", "{{define}}{{end}}", &TemplateData::default()).unwrap_err();
    assert!(
        e.to_string().contains("needs a quoted template name"),
        "{e}"
    );
}

#[test]
fn huge_printf_repeat_and_ranges_are_refused_not_aborted() {
    let data = TemplateData::default();
    let e = render("g.yaml", "x\n{{ \"ab\" | repeat 100000000000 }}\n", &data).unwrap_err();
    assert!(
        e.to_string()
            .contains("g.yaml:2:1: error: template: repeat: 100000000000 copies"),
        "{e}"
    );
    let e = render("g.yaml", "{{ repeat 9223372036854775807 \"a\" }}", &data).unwrap_err();
    assert!(e.to_string().contains("MiB limit"), "{e}");
    // Go's fmt refuses widths and precisions above 1e6.
    let out = render(
        "g.yaml",
        "{{ printf \"%999999999999d|%.99999999999f\" 1 2.5 }}",
        &data,
    )
    .unwrap();
    assert_eq!(out.text, "%!(BADWIDTH)1|%!(BADPREC)2.500000");
    let e = render("g.yaml", &"{{ printf \"%1000000d\" 1 }}".repeat(40), &data).unwrap_err();
    assert!(e.to_string().contains("exceeds 16 MiB"), "{e}");
    let e = render("g.yaml", "{{ range 9000000000000 }}.{{ end }}", &data).unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
    let e = render(
        "g.yaml",
        "{{ range 4000000 }}{{ range 4 }}{{ end }}{{ end }}",
        &data,
    )
    .unwrap_err();
    assert!(e.to_string().contains("exceeds 5000000 steps"), "{e}");
}

#[test]
fn find_string_submatch_as_goss() {
    let data = TemplateData::new(serde_json::json!({"s": "mysql://bob:pw@localhost"}));
    let out = render(
        "g.yaml",
        "{{ $m := .Vars.s | findStringSubmatch \"//(?P<user>[a-z]+):(?P<pw>[a-z]+)@\" }}{{ get $m \"user\" }}/{{ $m.pw }} {{ $n := findStringSubmatch \"(\\\\w+)@(\\\\w+)\" .Vars.s }}{{ index $n \"2\" }}",
        &data,
    )
    .unwrap();
    assert_eq!(out.text, "bob/pw localhost");
}
