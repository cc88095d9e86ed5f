//! goss's `xml` matcher: an XPath 1.0 query (`xpath`) on XML text, whose
//! result as text must equal `result`. As goss (antchfx/xpath): a number
//! prints as Go's `%G` (`2`, `0.5`, `1.5E+07`), a boolean as `true` /
//! `false`, a node set as its nodes serialised one after the other
//! (`<title>Harry Potter</title>`; text trimmed, empty elements as
//! `<x/>`, an attribute as `<name>value</name>`), and an empty `result` only asks for a non-empty node set.
//! Queries are parsed when the gossfile is loaded (sxd-xpath).
//!
//! Not as goss: namespace declarations (`xmlns:…`) are not printed in
//! serialised elements, and antchfx's XPath 2.0 extras (`ends-with`,
//! `lower-case`, ...) fail the check as unknown functions.

use std::fmt::Write;

use sxd_document::dom::{ChildOfElement, Element};
use sxd_xpath::nodeset::Node;
use sxd_xpath::{Context, Factory, Value};

/// Checks that `xpath` parses.
pub fn validate(xpath: &str) -> Result<(), String> {
    match Factory::new().build(xpath) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("xml: empty XPath query".into()),
        Err(e) => Err(format!("xml: invalid XPath query {xpath:?}: {e}")),
    }
}

/// Runs `xpath` on the XML `text`: `Ok(None)` when its result is
/// `expected`, `Ok(Some(why))` when not, `Err` when the XML or the query
/// cannot be evaluated.
pub fn check(text: &str, xpath: &str, expected: &str) -> Result<Option<String>, String> {
    let package = sxd_document::parser::parse(text)
        .map_err(|e| format!("xml: cannot parse the XML: {e:?}"))?;
    let doc = package.as_document();
    let query = Factory::new()
        .build(xpath)
        .map_err(|e| format!("xml: invalid XPath query {xpath:?}: {e}"))?
        .ok_or("xml: empty XPath query")?;
    let value = query
        .evaluate(&Context::new(), doc.root())
        .map_err(|e| format!("xml: XPath {xpath:?}: {e}"))?;
    let got = match value {
        Value::Nodeset(nodes) => {
            if expected.trim().is_empty() {
                return Ok((nodes.size() == 0).then(|| format!("xml: no node matches {xpath:?}")));
            }
            let mut s = String::new();
            for n in nodes.document_order() {
                node(&mut s, n);
            }
            s
        }
        Value::Number(n) => go_g(n),
        Value::Boolean(b) => b.to_string(),
        Value::String(s) => s,
    };
    Ok((got != expected)
        .then(|| format!("xml: XPath {xpath:?} gives {got:?}, expected {expected:?}")))
}

/// Go's `strconv.FormatFloat(n, 'G', -1, 64)`.
fn go_g(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if n == 0.0 {
        return "0".into();
    }
    let exp = n.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        return format!("{n}");
    }
    let e = format!("{n:E}");
    match e.split_once('E') {
        Some((m, x)) => {
            let x: i32 = x.parse().unwrap_or(0);
            let sign = if x < 0 { '-' } else { '+' };
            format!("{m}E{sign}{:02}", x.abs())
        }
        None => e,
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn qname(prefix: Option<&str>, local: &str) -> String {
    match prefix {
        Some(p) if !p.is_empty() => format!("{p}:{local}"),
        _ => local.to_string(),
    }
}

fn node(out: &mut String, n: Node<'_>) {
    match n {
        Node::Root(r) => {
            for c in r.children() {
                if let Some(e) = c.element() {
                    element(out, e);
                }
            }
        }
        Node::Element(e) => element(out, e),
        Node::Attribute(a) => {
            let name = qname(a.preferred_prefix(), a.name().local_part());
            // As xmlquery prints an attribute node: an element of its name.
            let _ = write!(out, "<{name}>{}</{name}>", escape(a.value()));
        }
        Node::Text(t) => out.push_str(&escape(t.text().trim())),
        Node::Comment(c) => {
            let _ = write!(out, "<!--{}-->", c.text());
        }
        Node::ProcessingInstruction(p) => {
            let _ = write!(out, "<?{} {}?>", p.target(), p.value().unwrap_or_default());
        }
        Node::Namespace(_) => {}
    }
}

fn element(out: &mut String, e: Element<'_>) {
    let name = qname(e.preferred_prefix(), e.name().local_part());
    out.push('<');
    out.push_str(&name);
    for a in e.attributes() {
        let an = qname(a.preferred_prefix(), a.name().local_part());
        let _ = write!(out, " {an}=\"{}\"", escape(a.value()));
    }
    let children = e.children();
    let mut inner = String::new();
    for c in children {
        match c {
            ChildOfElement::Element(c) => element(&mut inner, c),
            ChildOfElement::Text(t) => inner.push_str(&escape(t.text().trim())),
            ChildOfElement::Comment(c) => {
                let _ = write!(inner, "<!--{}-->", c.text());
            }
            ChildOfElement::ProcessingInstruction(p) => {
                let _ = write!(
                    inner,
                    "<?{} {}?>",
                    p.target(),
                    p.value().unwrap_or_default()
                );
            }
        }
    }
    if inner.is_empty() {
        out.push_str("/>");
    } else {
        let _ = write!(out, ">{inner}</{name}>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// goss's own matcher tests (matchers/xml_test.go), on its document.
    const DOC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<order date="2019-02-01">
    <address xmlns:billing="http://localhost/XML/billing">
        <billing:name>Mary Adams</billing:name>
        <billing:city>Old Town</billing:city>
    </address>
    <items>
        <book isbn="9781408845660">
            <title>Harry Potter</title>
            <quantity>1</quantity>
            <price>25</price>
        </book>
        <book isbn="9780544003415">
            <title>Le seigneur des anneaux</title>
            <quantity>1</quantity>
            <price>18</price>
        </book>
    </items>
</order>"#;

    #[test]
    fn goss_cases() {
        let ok = |x: &str, r: &str| check(DOC, x, r);
        assert_eq!(ok("count(//book)", "2"), Ok(None));
        assert_eq!(
            ok(
                "//book[title='Le seigneur des anneaux']/quantity/text()",
                "1"
            ),
            Ok(None)
        );
        assert_eq!(
            ok(
                "//book[@isbn='9780544003415']/title",
                "<title>Le seigneur des anneaux</title>"
            ),
            Ok(None)
        );
        assert_eq!(
            ok("boolean(//book[title='Le seigneur des anneaux'])", "true"),
            Ok(None)
        );
        assert_eq!(ok("sum(//price)", "43"), Ok(None));
        assert_eq!(ok("string(//book[1]/title)", "Harry Potter"), Ok(None));
        assert_eq!(ok("//book", ""), Ok(None));
        assert_eq!(
            ok("//book[1]/@isbn", "<isbn>9781408845660</isbn>"),
            Ok(None)
        );
        assert!(ok("//magazine", "").unwrap().is_some());
        assert!(ok("count(//book)", "3")
            .unwrap()
            .unwrap()
            .contains("gives \"2\""));
        assert_eq!(ok("//book[1]/quantity", "<quantity>1</quantity>"), Ok(None));
        assert!(check("<a><b></a>", "/a", "").is_err());
        assert!(validate("//book[").is_err());
        assert!(validate("count(//book)").is_ok());
        assert_eq!(check("<a><b/></a>", "/a", "<a><b/></a>"), Ok(None));
    }

    #[test]
    fn numbers_print_as_go_g() {
        assert_eq!(go_g(2.0), "2");
        assert_eq!(go_g(0.5), "0.5");
        assert_eq!(go_g(123456.0), "123456");
        assert_eq!(go_g(15_000_000.0), "1.5E+07");
        assert_eq!(go_g(0.00001), "1E-05");
        assert_eq!(go_g(f64::NAN), "NaN");
    }
}
