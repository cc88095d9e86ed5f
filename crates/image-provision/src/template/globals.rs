//! ansible's global functions and time filters: `now(utc=False, fmt=None)`
//! (a Python datetime, see `datetime`, or text formatted with Python's
//! `strftime` directives), `undef(hint)`, the `strftime` and `to_datetime`
//! filters,
//! and Python's `True`/`False`/`None` names. Local time is taken as UTC
//! (build hosts run in UTC; the `time` crate cannot read the local offset
//! safely in a threaded program).

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, Value};
use time::OffsetDateTime;

use super::datetime::{to_datetime, PyDateTime};
use super::err;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Python's `strftime` on a UTC timestamp.
pub(crate) fn strftime(t: OffsetDateTime, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let month = t.month() as usize - 1;
        let wd = t.weekday().number_days_from_monday() as usize;
        let h12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let s = match d {
            'Y' => t.year().to_string(),
            'y' => format!("{:02}", t.year().rem_euclid(100)),
            'm' => format!("{:02}", month + 1),
            'd' => format!("{:02}", t.day()),
            'e' => format!("{:2}", t.day()),
            'H' => format!("{:02}", t.hour()),
            'I' => format!("{h12:02}"),
            'M' => format!("{:02}", t.minute()),
            'S' => format!("{:02}", t.second()),
            'f' => format!("{:06}", t.microsecond()),
            'p' => if t.hour() < 12 { "AM" } else { "PM" }.into(),
            'j' => format!("{:03}", t.ordinal()),
            'b' | 'h' => MONTHS[month][..3].into(),
            'B' => MONTHS[month].into(),
            'a' => DAYS[wd][..3].into(),
            'A' => DAYS[wd].into(),
            'w' => t.weekday().number_days_from_sunday().to_string(),
            'u' => (wd + 1).to_string(),
            'z' => "+0000".into(),
            'Z' => "UTC".into(),
            's' => t.unix_timestamp().to_string(),
            'F' => format!("{}-{:02}-{:02}", t.year(), month + 1, t.day()),
            'T' => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
            'D' => format!(
                "{:02}/{:02}/{:02}",
                month + 1,
                t.day(),
                t.year().rem_euclid(100)
            ),
            'R' => format!("{:02}:{:02}", t.hour(), t.minute()),
            'n' => "\n".into(),
            't' => "\t".into(),
            '%' => "%".into(),
            o => format!("%{o}"),
        };
        out.push_str(&s);
    }
    out
}

fn now(kw: Kwargs) -> Result<Value, Error> {
    let _utc: Option<bool> = kw.get("utc")?;
    let fmt: Option<String> = kw.get("fmt")?;
    kw.assert_all_used()?;
    let t = OffsetDateTime::now_utc();
    Ok(match fmt {
        Some(f) => Value::from(strftime(t, &f)),
        None => PyDateTime::naive(t).value(),
    })
}

/// Python's `dict(...)`: from a mapping or a list of pairs, and keywords.
fn dict(v: Option<Value>, kw: Kwargs) -> Result<Value, Error> {
    let mut out: Vec<(Value, Value)> = Vec::new();
    if let Some(v) = v.filter(|v| !v.is_none()) {
        if v.kind() == ValueKind::Map {
            for k in v.try_iter()? {
                let x = v.get_item(&k)?;
                out.push((k, x));
            }
        } else {
            for pair in v.try_iter()? {
                let p: Vec<Value> = pair.try_iter()?.collect();
                if p.len() != 2 {
                    return Err(err(format!(
                        "dict(): sequence element has length {}; 2 is required",
                        p.len()
                    )));
                }
                out.push((p[0].clone(), p[1].clone()));
            }
        }
    }
    for k in kw.args() {
        let x: Value = kw.get(k)?;
        out.push((Value::from(k), x));
    }
    // Later keys win, in first-seen order (a Python dict).
    let mut merged: Vec<(Value, Value)> = Vec::new();
    for (k, x) in out {
        match merged.iter_mut().find(|(mk, _)| *mk == k) {
            Some(slot) => slot.1 = x,
            None => merged.push((k, x)),
        }
    }
    Ok(Value::from_iter(merged))
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_function("now", now);
    env.add_function(
        "undef",
        |hint: Option<String>, kw: Kwargs| -> Result<Value, Error> {
            let kw_hint: Option<String> = kw.get("hint")?;
            kw.assert_all_used()?;
            let _ = hint.or(kw_hint);
            Ok(Value::UNDEFINED)
        },
    );
    env.add_filter(
        "strftime",
        |fmt: String, second: Option<Value>, kw: Kwargs| -> Result<String, Error> {
            let _utc: Option<bool> = kw.get("utc")?;
            kw.assert_all_used()?;
            let t = match second.filter(|s| !s.is_none()) {
                Some(s) => {
                    let secs: f64 = s
                        .to_string()
                        .parse()
                        .map_err(|_| err(format!("strftime: invalid value for epoch: {s}")))?;
                    OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
                        .map_err(|e| err(format!("strftime: {e}")))?
                }
                None => OffsetDateTime::now_utc(),
            };
            Ok(strftime(t, &fmt))
        },
    );
    env.add_filter("to_datetime", to_datetime);
    env.add_function("dict", dict);
    env.add_global("True", Value::from(true));
    env.add_global("False", Value::from(false));
    env.add_global("None", Value::from(()));
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn python_strftime() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(strftime(t, "%Y-%m-%dT%H:%M:%SZ"), "2023-11-14T22:13:20Z");
        assert_eq!(strftime(t, "%a %b %d %j %I%p %%"), "Tue Nov 14 318 10PM %");
        assert_eq!(PyDateTime::naive(t).to_string(), "2023-11-14 22:13:20");
    }
}
