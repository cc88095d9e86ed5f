//! Python's `datetime.datetime` as ansible's templates see it: what
//! `now()` and the `to_datetime` filter return. Attributes (`year` ...
//! `microsecond`, `tzinfo`), methods (`strftime`, `isoformat`,
//! `timestamp`, `weekday`, `isoweekday`, `replace`), comparisons between
//! datetimes, Python's `str()` in text and `isoformat()` as a native
//! result (ansible's JSON encoder). `to_datetime` parses with Python's
//! `strptime` directives. Naive datetimes are taken as UTC (see `globals`).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{from_args, DynObject, Kwargs, Object, ObjectRepr};
use minijinja::{Error, ErrorKind, State, Value};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::err;
use super::globals::strftime;

/// A Python datetime: naive unless parsed with `%z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PyDateTime {
    t: OffsetDateTime,
    aware: bool,
}

impl PyDateTime {
    /// A naive datetime.
    pub(crate) fn naive(t: OffsetDateTime) -> Self {
        PyDateTime { t, aware: false }
    }

    /// As a template value.
    pub(crate) fn value(self) -> Value {
        Value::from_object(self)
    }

    /// `+HH:MM` of an aware datetime.
    fn offset_text(&self) -> String {
        if !self.aware {
            return String::new();
        }
        let (h, m, _) = self.t.offset().as_hms();
        let sign = if h < 0 || m < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.abs(), m.abs())
    }

    /// Python's `isoformat(sep)`.
    pub(crate) fn isoformat(&self, sep: &str) -> String {
        let mut s = strftime(self.t, &format!("%Y-%m-%d{sep}%H:%M:%S"));
        if self.t.microsecond() != 0 {
            s.push_str(&format!(".{:06}", self.t.microsecond()));
        }
        s + &self.offset_text()
    }

    fn replace(&self, kw: &Kwargs) -> Result<Self, Error> {
        let get = |k: &str, cur: i64| -> Result<i64, Error> {
            Ok(kw.get::<Option<i64>>(k)?.unwrap_or(cur))
        };
        let t = self.t;
        let field = |v: i64, what: &str| -> Result<u8, Error> {
            u8::try_from(v).map_err(|_| err(format!("replace: {what} {v} is out of range")))
        };
        let year = i32::try_from(get("year", i64::from(t.year()))?)
            .map_err(|_| err("replace: year is out of range"))?;
        let month = Month::try_from(field(get("month", i64::from(t.month() as u8))?, "month")?)
            .map_err(|e| err(format!("replace: {e}")))?;
        let day = field(get("day", i64::from(t.day()))?, "day")?;
        let hour = field(get("hour", i64::from(t.hour()))?, "hour")?;
        let minute = field(get("minute", i64::from(t.minute()))?, "minute")?;
        let second = field(get("second", i64::from(t.second()))?, "second")?;
        let micro = u32::try_from(get("microsecond", i64::from(t.microsecond()))?)
            .map_err(|_| err("replace: microsecond is out of range"))?;
        kw.assert_all_used()?;
        let date =
            Date::from_calendar_date(year, month, day).map_err(|e| err(format!("replace: {e}")))?;
        let time = Time::from_hms_micro(hour, minute, second, micro)
            .map_err(|e| err(format!("replace: {e}")))?;
        Ok(PyDateTime {
            t: PrimitiveDateTime::new(date, time).assume_offset(t.offset()),
            aware: self.aware,
        })
    }
}

impl fmt::Display for PyDateTime {
    /// Python's `str(datetime)`: `2026-12-05 13:03:59.004146`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.isoformat(" "))
    }
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let t = self.t;
        Some(match key.as_str()? {
            "year" => Value::from(t.year()),
            "month" => Value::from(t.month() as u8),
            "day" => Value::from(t.day()),
            "hour" => Value::from(t.hour()),
            "minute" => Value::from(t.minute()),
            "second" => Value::from(t.second()),
            "microsecond" => Value::from(t.microsecond()),
            "tzinfo" if !self.aware => Value::from(()),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let t = self.t;
        match method {
            "strftime" => {
                let (fmt,): (&str,) = from_args(args)?;
                Ok(Value::from(strftime(t, fmt)))
            }
            "isoformat" => {
                let (sep,): (Option<&str>,) = from_args(args)?;
                Ok(Value::from(self.isoformat(sep.unwrap_or("T"))))
            }
            "timestamp" => {
                let _: () = from_args(args)?;
                Ok(Value::from(
                    t.unix_timestamp() as f64 + f64::from(t.microsecond()) / 1e6,
                ))
            }
            "weekday" => {
                let _: () = from_args(args)?;
                Ok(Value::from(t.weekday().number_days_from_monday()))
            }
            "isoweekday" => {
                let _: () = from_args(args)?;
                Ok(Value::from(t.weekday().number_from_monday()))
            }
            "replace" => {
                let (kw,): (Kwargs,) = from_args(args)?;
                Ok(self.replace(&kw)?.value())
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Self>()?;
        Some(self.t.cmp(&other.t))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The native (JSON) form of a datetime value: Python's `isoformat()`, as
/// ansible's JSON encoder writes it; `None` for other values.
pub(crate) fn native(v: &Value) -> Option<String> {
    v.downcast_object_ref::<PyDateTime>()
        .map(|d| d.isoformat("T"))
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The fields `strptime` collects.
#[derive(Default)]
struct Parsed {
    year: Option<i32>,
    month: Option<u8>,
    day: Option<u8>,
    hour: u8,
    hour12: Option<u8>,
    pm: Option<bool>,
    minute: u8,
    second: u8,
    micro: u32,
    yday: Option<u16>,
    offset: Option<UtcOffset>,
}

/// Reads up to `max` digits (at least one) at the front of `s`.
fn digits<'a>(s: &'a str, max: usize, what: &str) -> Result<(u32, &'a str), String> {
    let n = s
        .char_indices()
        .take(max)
        .take_while(|(_, c)| c.is_ascii_digit())
        .count();
    if n == 0 {
        return Err(format!("expected {what}"));
    }
    let v = s[..n].parse().map_err(|_| format!("bad {what}"))?;
    Ok((v, &s[n..]))
}

/// Reads one of `names` (full or its first three letters, any case).
fn name<'a>(s: &'a str, names: &[&str]) -> Result<(usize, &'a str), String> {
    let low = s.to_ascii_lowercase();
    for (i, n) in names.iter().enumerate() {
        if low.starts_with(n) {
            return Ok((i, &s[n.len()..]));
        }
    }
    for (i, n) in names.iter().enumerate() {
        if low.starts_with(&n[..3]) {
            return Ok((i, &s[3..]));
        }
    }
    Err("expected a name".into())
}

/// Python's `datetime.strptime(s, fmt)` for the usual directives.
pub(crate) fn strptime(s: &str, fmt: &str) -> Result<PyDateTime, String> {
    let mismatch = || format!("time data {s:?} does not match format {fmt:?}");
    let mut p = Parsed::default();
    let mut rest = s;
    let mut f = fmt.chars().peekable();
    while let Some(c) = f.next() {
        if c.is_whitespace() {
            // Whitespace in the format matches any run of whitespace.
            while f.peek().is_some_and(|c| c.is_whitespace()) {
                f.next();
            }
            rest = rest.trim_start();
            continue;
        }
        if c != '%' {
            let mut it = rest.chars();
            match it.next() {
                Some(r) if r.eq_ignore_ascii_case(&c) => rest = it.as_str(),
                _ => return Err(mismatch()),
            }
            continue;
        }
        let d = f
            .next()
            .ok_or_else(|| format!("stray % in format {fmt:?}"))?;
        let r: Result<&str, String> = (|| {
            Ok(match d {
                'Y' => {
                    let (v, r) = digits(rest, 4, "a year")?;
                    p.year = Some(v as i32);
                    r
                }
                'y' => {
                    let (v, r) = digits(rest, 2, "a year")?;
                    // Python: 69-99 are 1969-1999, 0-68 are 2000-2068.
                    p.year = Some(if v >= 69 { 1900 + v } else { 2000 + v } as i32);
                    r
                }
                'm' => {
                    let (v, r) = digits(rest, 2, "a month")?;
                    p.month = Some(v as u8);
                    r
                }
                'd' => {
                    let (v, r) = digits(rest.trim_start(), 2, "a day")?;
                    p.day = Some(v as u8);
                    r
                }
                'H' => {
                    let (v, r) = digits(rest, 2, "an hour")?;
                    p.hour = v as u8;
                    r
                }
                'I' => {
                    let (v, r) = digits(rest, 2, "an hour")?;
                    p.hour12 = Some(v as u8);
                    r
                }
                'M' => {
                    let (v, r) = digits(rest, 2, "a minute")?;
                    p.minute = v as u8;
                    r
                }
                'S' => {
                    let (v, r) = digits(rest, 2, "a second")?;
                    p.second = v as u8;
                    r
                }
                'f' => {
                    let n = rest
                        .chars()
                        .take(6)
                        .take_while(char::is_ascii_digit)
                        .count();
                    let (v, r) = digits(rest, 6, "microseconds")?;
                    p.micro = v * 10u32.pow(6 - n as u32);
                    r
                }
                'j' => {
                    let (v, r) = digits(rest, 3, "a day of the year")?;
                    p.yday = Some(v as u16);
                    r
                }
                'b' | 'B' | 'h' => {
                    let (i, r) = name(rest, &MONTHS)?;
                    p.month = Some(i as u8 + 1);
                    r
                }
                'a' | 'A' => name(rest, &DAYS)?.1,
                'p' => {
                    let low = rest.get(..2).map(str::to_ascii_lowercase);
                    p.pm = match low.as_deref() {
                        Some("am") => Some(false),
                        Some("pm") => Some(true),
                        _ => return Err("expected AM or PM".into()),
                    };
                    &rest[2..]
                }
                'z' => {
                    if let Some(r) = rest.strip_prefix('Z') {
                        p.offset = Some(UtcOffset::UTC);
                        return Ok(r);
                    }
                    let sign = match rest.chars().next() {
                        Some('+') => 1,
                        Some('-') => -1,
                        _ => return Err("expected a UTC offset".into()),
                    };
                    let (h, r) = digits(&rest[1..], 2, "an offset")?;
                    let r = r.strip_prefix(':').unwrap_or(r);
                    let (m, r) = digits(r, 2, "an offset")?;
                    p.offset = Some(
                        UtcOffset::from_hms(sign * h as i8, sign * m as i8, 0)
                            .map_err(|e| e.to_string())?,
                    );
                    r
                }
                'Z' => rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()),
                '%' => rest.strip_prefix('%').ok_or("expected %")?,
                o => return Err(format!("directive %{o} is not supported")),
            })
        })();
        rest = r.map_err(|e| format!("{}: {e}", mismatch()))?;
    }
    if !rest.is_empty() {
        return Err(format!("unconverted data remains: {rest}"));
    }
    build(p).map_err(|e| format!("{}: {e}", mismatch()))
}

fn build(p: Parsed) -> Result<PyDateTime, String> {
    let year = p.year.unwrap_or(1900);
    let date = match (p.yday, p.month, p.day) {
        (Some(j), None, None) => Date::from_ordinal_date(year, j),
        (_, m, d) => {
            let month = Month::try_from(m.unwrap_or(1)).map_err(|e| e.to_string())?;
            Date::from_calendar_date(year, month, d.unwrap_or(1))
        }
    }
    .map_err(|e| e.to_string())?;
    let hour = match (p.hour12, p.pm) {
        (Some(h), Some(true)) => h % 12 + 12,
        (Some(h), _) => h % 12,
        (None, _) => p.hour,
    };
    let time =
        Time::from_hms_micro(hour, p.minute, p.second, p.micro).map_err(|e| e.to_string())?;
    let dt = PrimitiveDateTime::new(date, time);
    Ok(match p.offset {
        Some(o) => PyDateTime {
            t: dt.assume_offset(o),
            aware: true,
        },
        None => PyDateTime::naive(dt.assume_utc()),
    })
}

/// The `to_datetime` filter.
pub(super) fn to_datetime(s: String, fmt: Option<String>) -> Result<Value, Error> {
    let fmt = fmt.unwrap_or_else(|| "%Y-%m-%d %H:%M:%S".into());
    strptime(&s, &fmt)
        .map(PyDateTime::value)
        .map_err(|e| err(format!("to_datetime: {e}")))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn strptime_as_python() {
        let d = strptime("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(d.to_string(), "2024-01-02 03:04:05");
        assert_eq!(d.isoformat("T"), "2024-01-02T03:04:05");
        let d = strptime("5 Mar 24 07:08PM", "%d %b %y %I:%M%p").unwrap();
        assert_eq!(d.to_string(), "2024-03-05 19:08:00");
        let d = strptime("2024-01-02T03:04:05.5+0200", "%Y-%m-%dT%H:%M:%S.%f%z").unwrap();
        assert_eq!(d.to_string(), "2024-01-02 03:04:05.500000+02:00");
        assert!(strptime("2024-01-02", "%Y-%m-%d %H").is_err());
        assert!(strptime("2024-01-02x", "%Y-%m-%d").is_err());
        assert!(strptime("2024-13-02", "%Y-%m-%d").is_err());
    }
}
