//! Deep merge of build settings: a build overrides `defaults` key by key;
//! mappings merge recursively, everything else (lists included) replaces.

use crate::yaml::{Node, Value};

/// `over` merged onto `base`. Keys keep their nodes (and so their
/// locations); the result is located at `over`.
pub fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (_, Value::Null) => base.clone(),
        (Value::Map(b), Value::Map(o)) => {
            let mut out: Vec<(Node, Node)> = Vec::new();
            for (k, v) in b.iter().chain(o.iter()) {
                let key = k.as_key();
                match out.iter_mut().find(|(ok, _)| ok.as_key() == key) {
                    Some((ok, ov)) => {
                        *ov = merge(ov, v);
                        *ok = k.clone();
                    }
                    None => out.push((k.clone(), v.clone())),
                }
            }
            Node {
                value: Value::Map(out),
                loc: over.loc.clone(),
            }
        }
        _ => over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    #[test]
    fn maps_merge_lists_replace() {
        let base = yaml::parse("d", "a: 1\nt: {x: 1, y: 2}\nl: [1, 2]\n").unwrap();
        let over = yaml::parse("b", "t: {y: 3}\nl: [9]\nz: 0\n").unwrap();
        let m = merge(&base, &over);
        assert_eq!(m.get("a").unwrap().as_i64(), Some(1));
        assert_eq!(m.get("t").unwrap().get("x").unwrap().as_i64(), Some(1));
        assert_eq!(m.get("t").unwrap().get("y").unwrap().as_i64(), Some(3));
        assert_eq!(m.get("l").unwrap().as_seq().unwrap().len(), 1);
        assert_eq!(&*m.get("z").unwrap().loc.file, "b");
    }
}
