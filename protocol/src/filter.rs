//! Filters on events, containers and the image store's listings, in the selector syntax users of container tools know.
//!
//! ```text
//! filter   := clause ("," clause)*          every clause must hold (and)
//! clause   := path [op value]               a bare path tests that the field is present
//! path     := part ("." part)*              labels.app, labels."my key"
//! part     := name | "\"" chars "\""        a quoted part may hold any character; \" and \\ escape
//! op       := "==" | "!=" | "~="            equal, not equal, matches the regular expression
//! value    := "\"" chars "\"" | raw         raw runs to the next comma, spaces trimmed
//! ```
//!
//! Several filters are alternatives (or): an item passes if it matches any of them, and every
//! item passes when there is none. `==` and `~=` need the field to be present; `!=` also holds
//! when it is absent (an event without a status is not one with status 0). A regular expression
//! is searched for anywhere in the value, so anchor it (`id~=^web-`) to match a prefix.
//!
//! The grammar lives here so that `ctr` reports a mistake before it connects and the daemon,
//! which runs the filters, parses exactly the same way. A parse error names the 1-based column
//! (in characters) where it went wrong.

use std::borrow::Cow;
use std::marker::PhantomData;

use regex::{Regex, RegexBuilder};

use crate::images::{ContentBlob, Image, Snapshot};
use crate::message::{Container, Event};

/// The largest compiled regular expression a filter may hold: filters come from clients, and
/// the daemon runs them on every event.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a filter can look at in a `T`: named scalar fields and string maps (`labels.<key>`).
pub trait Fields {
    /// Field names with one value each.
    const SCALARS: &'static [&'static str];
    /// Field names holding a map of strings, addressed as `<name>.<key>`.
    const MAPS: &'static [&'static str];

    /// The value at `path`, which the parser has checked against [`Fields::SCALARS`] and
    /// [`Fields::MAPS`]; `None` when the item does not have it.
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>>;
}

impl Fields for Event {
    const SCALARS: &'static [&'static str] =
        &["seq", "type", "namespace", "id", "process", "pid", "status"];
    const MAPS: &'static [&'static str] = &["labels"];

    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [name] => Some(match name.as_str() {
                "seq" => Cow::Owned(self.seq.to_string()),
                "type" => Cow::Owned(self.kind.to_string()),
                "namespace" => Cow::Borrowed(self.namespace.as_str()),
                "id" => Cow::Borrowed(self.id.as_str()),
                "process" => Cow::Borrowed(self.process.as_str()),
                "pid" => Cow::Owned(self.pid.to_string()),
                "status" => Cow::Owned(self.status?.to_string()),
                _ => return None,
            }),
            [map, key] if map == "labels" => {
                self.labels.get(key).map(|v| Cow::Borrowed(v.as_str()))
            }
            _ => None,
        }
    }
}

impl Fields for Container {
    const SCALARS: &'static [&'static str] =
        &["id", "namespace", "bundle", "status", "pid", "exit_status"];
    const MAPS: &'static [&'static str] = &["labels"];

    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [name] => Some(match name.as_str() {
                "id" => Cow::Borrowed(self.id.as_str()),
                "namespace" => Cow::Borrowed(self.namespace.as_str()),
                "bundle" => Cow::Borrowed(self.bundle.as_str()),
                "status" => Cow::Owned(self.status.to_string()),
                "pid" => Cow::Owned(self.pid?.to_string()),
                "exit_status" => Cow::Owned(self.exit?.status?.to_string()),
                _ => return None,
            }),
            [map, key] if map == "labels" => {
                self.labels.get(key).map(|v| Cow::Borrowed(v.as_str()))
            }
            _ => None,
        }
    }
}

impl Fields for Image {
    const SCALARS: &'static [&'static str] = &["name", "type", "digest", "size", "platforms"];
    const MAPS: &'static [&'static str] = &["labels"];

    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [name] => Some(match name.as_str() {
                "name" => Cow::Borrowed(self.name.as_str()),
                "type" => Cow::Borrowed(self.media_type.as_str()),
                "digest" => Cow::Borrowed(self.digest.as_str()),
                "size" => Cow::Owned(self.size.to_string()),
                // One value for a list: `platforms~=arm64` finds an image that has that one.
                "platforms" => Cow::Owned(self.platforms.join(",")),
                _ => return None,
            }),
            [map, key] if map == "labels" => {
                self.labels.get(key).map(|v| Cow::Borrowed(v.as_str()))
            }
            _ => None,
        }
    }
}

impl Fields for Snapshot {
    const SCALARS: &'static [&'static str] = &["key", "parent", "kind"];
    const MAPS: &'static [&'static str] = &[];

    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [name] => Some(match name.as_str() {
                "key" => Cow::Borrowed(self.key.as_str()),
                "parent" => Cow::Borrowed(self.parent.as_deref()?),
                "kind" => Cow::Owned(self.kind.to_string()),
                _ => return None,
            }),
            _ => None,
        }
    }
}

impl Fields for ContentBlob {
    const SCALARS: &'static [&'static str] = &["digest", "size"];
    const MAPS: &'static [&'static str] = &[];

    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [name] => Some(match name.as_str() {
                "digest" => Cow::Borrowed(self.digest.as_str()),
                "size" => Cow::Owned(self.size.to_string()),
                _ => return None,
            }),
            _ => None,
        }
    }
}

/// A parse failure: which filter, and the column it failed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter {expr:?} at column {column}: {message}")]
pub struct FilterError {
    pub expr: String,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Parsed filters for items of type `T`: an item passes if it matches any selector.
#[derive(Debug)]
pub struct Filter<T> {
    any: Vec<Selector>,
    item: PhantomData<fn(&T)>,
}

#[derive(Debug, Clone)]
struct Selector {
    all: Vec<Clause>,
}

#[derive(Debug, Clone)]
struct Clause {
    path: Vec<String>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Present,
    Equals(String),
    NotEquals(String),
    Matches(Regex),
}

impl<T: Fields> Filter<T> {
    /// Parses each expression; the first that fails is the error.
    pub fn parse(exprs: &[String]) -> Result<Self, FilterError> {
        let any = exprs
            .iter()
            .map(|expr| Parser::<T>::new(expr).selector())
            .collect::<Result<_, _>>()?;
        Ok(Filter {
            any,
            item: PhantomData,
        })
    }

    /// Lets every item through.
    pub fn everything() -> Self {
        Filter {
            any: Vec::new(),
            item: PhantomData,
        }
    }

    pub fn matches(&self, item: &T) -> bool {
        self.any.is_empty() || self.any.iter().any(|s| s.matches(item))
    }
}

impl Selector {
    fn matches<T: Fields>(&self, item: &T) -> bool {
        self.all.iter().all(|clause| {
            let value = item.field(&clause.path);
            match (&clause.test, value) {
                (Test::Present, value) => value.is_some(),
                (Test::Equals(want), Some(v)) => v == want.as_str(),
                (Test::NotEquals(want), Some(v)) => v != want.as_str(),
                (Test::NotEquals(_), None) => true,
                (Test::Matches(re), Some(v)) => re.is_match(&v),
                (Test::Equals(_) | Test::Matches(_), None) => false,
            }
        })
    }
}

/// A recursive-descent parser over one expression's characters.
struct Parser<'a, T> {
    expr: &'a str,
    chars: Vec<char>,
    pos: usize,
    item: PhantomData<fn(&T)>,
}

impl<'a, T: Fields> Parser<'a, T> {
    fn new(expr: &'a str) -> Self {
        Parser {
            expr,
            chars: expr.chars().collect(),
            pos: 0,
            item: PhantomData,
        }
    }

    fn selector(mut self) -> Result<Selector, FilterError> {
        let mut all = Vec::new();
        loop {
            all.push(self.clause()?);
            self.skip_spaces();
            match self.peek() {
                None => return Ok(Selector { all }),
                Some(',') => self.pos += 1,
                Some(_) => {
                    return Err(self.error(self.pos, "expected ',' or the end of the filter"))
                }
            }
        }
    }

    fn clause(&mut self) -> Result<Clause, FilterError> {
        self.skip_spaces();
        let start = self.pos;
        let path = self.path()?;
        self.check_path(&path, start)?;
        self.skip_spaces();
        let op_at = self.pos;
        let op = match (self.peek(), self.chars.get(self.pos + 1)) {
            (None | Some(','), _) => {
                return Ok(Clause {
                    path,
                    test: Test::Present,
                })
            }
            (Some(op @ ('=' | '!' | '~')), Some('=')) => op,
            _ => return Err(self.error(op_at, "expected ==, != or ~=, a ',' or the end")),
        };
        self.pos += 2;
        self.skip_spaces();
        let value_at = self.pos;
        let value = self.value()?;
        let test = match op {
            '=' => Test::Equals(value),
            '!' => Test::NotEquals(value),
            _ => Test::Matches(
                RegexBuilder::new(&value)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| self.error(value_at, regex_message(&e)))?,
            ),
        };
        Ok(Clause { path, test })
    }

    fn path(&mut self) -> Result<Vec<String>, FilterError> {
        let mut parts = Vec::new();
        loop {
            let part = match self.peek() {
                Some('"') => self.quoted()?,
                _ => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_name_char) {
                        self.pos += 1;
                    }
                    if self.pos == start {
                        return Err(self.error(start, "expected a field name"));
                    }
                    self.chars[start..self.pos].iter().collect()
                }
            };
            parts.push(part);
            if self.peek() != Some('.') {
                return Ok(parts);
            }
            self.pos += 1;
        }
    }

    /// Rejects fields `T` does not have, so a typo is an error and not a filter matching nothing.
    fn check_path(&self, path: &[String], start: usize) -> Result<(), FilterError> {
        let known = || {
            let maps = T::MAPS.iter().map(|m| format!("{m}.<key>"));
            T::SCALARS
                .iter()
                .map(|s| s.to_string())
                .chain(maps)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = path[0].as_str();
        let fine = if T::SCALARS.contains(&name) {
            path.len() == 1
        } else if T::MAPS.contains(&name) {
            path.len() == 2
        } else {
            return Err(self.error(
                start,
                format!("unknown field {name:?}; expected one of {}", known()),
            ));
        };
        if fine {
            return Ok(());
        }
        let hint = if T::MAPS.contains(&name) {
            format!("{name} takes one key: {name}.<key>")
        } else {
            format!("{name} has no subfields")
        };
        Err(self.error(start, hint))
    }

    fn value(&mut self) -> Result<String, FilterError> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c != ',') {
            self.pos += 1;
        }
        Ok(self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_string())
    }

    /// A string in double quotes, where a backslash makes the next character literal.
    fn quoted(&mut self) -> Result<String, FilterError> {
        let open = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error(open, "unterminated quoted string")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some('\\') => {
                    let Some(&c) = self.chars.get(self.pos + 1) else {
                        return Err(self.error(open, "unterminated quoted string"));
                    };
                    text.push(c);
                    self.pos += 2;
                }
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, pos: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            expr: self.expr.to_string(),
            column: pos + 1,
            message: message.into(),
        }
    }
}

fn is_name_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '.' | ',' | '=' | '!' | '~' | '"')
}

/// The regex crate explains a syntax error over several lines with the pattern drawn out; the
/// filter error already points at the pattern, so only the explanation is kept.
fn regex_message(err: &regex::Error) -> String {
    let text = err.to_string();
    let reason = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().next().unwrap_or("invalid"));
    format!("invalid regular expression: {reason}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::message::EventKind;

    fn event(kind: EventKind, id: &str, status: Option<i32>) -> Event {
        Event {
            seq: 7,
            time: 1,
            kind,
            namespace: "default".into(),
            id: id.into(),
            process: "init".into(),
            pid: 42,
            status,
            labels: BTreeMap::from([
                ("app".into(), "db".into()),
                ("my key".into(), "x".into()),
                ("a.b".into(), "dotted".into()),
            ]),
            oom_killed: false,
        }
    }

    fn filter(exprs: &[&str]) -> Filter<Event> {
        let exprs: Vec<String> = exprs.iter().map(|s| s.to_string()).collect();
        Filter::parse(&exprs).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(expr: &str) -> FilterError {
        Filter::<Event>::parse(&[expr.to_string()]).unwrap_err()
    }

    #[test]
    fn comma_is_and() {
        let f = filter(&["type==exit,status!=0"]);
        assert!(f.matches(&event(EventKind::Exit, "a", Some(137))));
        assert!(!f.matches(&event(EventKind::Exit, "a", Some(0))));
        assert!(!f.matches(&event(EventKind::StartContainer, "a", None)));
    }

    #[test]
    fn several_filters_are_or_and_none_lets_everything_through() {
        let f = filter(&["id==a", "status==3"]);
        assert!(f.matches(&event(EventKind::Exit, "a", Some(0))));
        assert!(f.matches(&event(EventKind::Exit, "b", Some(3))));
        assert!(!f.matches(&event(EventKind::Exit, "b", Some(0))));
        assert!(filter(&[]).matches(&event(EventKind::Exit, "z", None)));
        assert!(Filter::everything().matches(&event(EventKind::Exit, "z", None)));
    }

    #[test]
    fn regex_searches_and_anchors_work() {
        let f = filter(&["id~=^web-"]);
        assert!(f.matches(&event(EventKind::Exit, "web-1", None)));
        assert!(!f.matches(&event(EventKind::Exit, "my-web-1", None)));
        assert!(filter(&["id~=eb"]).matches(&event(EventKind::Exit, "web", None)));
        assert!(filter(&["id~=\"^(a|b),c$\""]).matches(&event(EventKind::Exit, "b,c", None)));
    }

    #[test]
    fn bare_path_tests_presence() {
        assert!(filter(&["status"]).matches(&event(EventKind::Exit, "a", Some(0))));
        assert!(!filter(&["status"]).matches(&event(EventKind::StartContainer, "a", None)));
        assert!(filter(&["labels.app"]).matches(&event(EventKind::Exit, "a", None)));
        assert!(!filter(&["labels.nope"]).matches(&event(EventKind::Exit, "a", None)));
    }

    #[test]
    fn not_equal_holds_for_an_absent_field() {
        assert!(filter(&["status!=0"]).matches(&event(EventKind::StartContainer, "a", None)));
        assert!(filter(&["labels.nope!=x"]).matches(&event(EventKind::Exit, "a", None)));
        assert!(!filter(&["labels.nope==x"]).matches(&event(EventKind::Exit, "a", None)));
    }

    #[test]
    fn quoted_parts_hold_any_key() {
        let e = event(EventKind::Exit, "a", None);
        assert!(filter(&["labels.\"my key\"==x"]).matches(&e));
        assert!(filter(&["labels.\"a.b\"==dotted"]).matches(&e));
        assert!(filter(&["labels.app==\"db\""]).matches(&e));
        assert!(filter(&["\"labels\".app==db"]).matches(&e));
        assert!(!filter(&["labels.\"my key\"==y"]).matches(&e));
        let mut quoted = e.clone();
        quoted.labels.insert("q\"uo\\te".into(), "1".into());
        assert!(filter(&[r#"labels."q\"uo\\te"==1"#]).matches(&quoted));
    }

    #[test]
    fn spaces_around_clauses_and_operators_are_ignored() {
        let f = filter(&[" type == exit , status != 0 "]);
        assert!(f.matches(&event(EventKind::Exit, "a", Some(1))));
        assert!(!f.matches(&event(EventKind::Exit, "a", Some(0))));
    }

    #[test]
    fn containers_have_their_own_fields() {
        let c = Container {
            namespace: "default".into(),
            id: "web-1".into(),
            bundle: "/b".into(),
            status: crate::Status::Running,
            pid: Some(3),
            created: 0,
            labels: BTreeMap::from([("app".into(), "web".into())]),
            stdout: String::new(),
            stderr: String::new(),
            processes: Vec::new(),
            limits: None,
            lost_output: Default::default(),
            exit: None,
        };
        let parse = |e: &str| Filter::<Container>::parse(&[e.to_string()]);
        assert!(parse("status==running,labels.app==web")
            .unwrap()
            .matches(&c));
        assert!(!parse("exit_status").unwrap().matches(&c));
        let stopped = Container {
            status: crate::Status::Stopped,
            exit: Some(crate::ContainerExit {
                status: Some(137),
                time: 1,
                oom_killed: false,
            }),
            ..c.clone()
        };
        assert!(parse("status==stopped,exit_status==137")
            .unwrap()
            .matches(&stopped));
        assert!(!parse("bundle!=/b").unwrap().matches(&c));
        assert_eq!(parse("type==exit").unwrap_err().column, 1);
    }

    #[test]
    fn images_snapshots_and_blobs_have_their_own_fields() {
        let image = crate::Image {
            name: "docker.io/library/busybox:1".into(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            digest: "sha256:ab".into(),
            size: 42,
            platforms: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
            labels: BTreeMap::from([("team".into(), "a".into())]),
            created: 0,
        };
        let images = |e: &str| Filter::<crate::Image>::parse(&[e.to_string()]).unwrap();
        assert!(images("name~=busybox,platforms~=arm64,labels.team==a").matches(&image));
        assert!(!images("type~=manifest.v1").matches(&image));
        let snapshot = crate::Snapshot {
            key: "default/web".into(),
            parent: None,
            kind: crate::SnapshotKind::Active,
            created: 0,
        };
        let snapshots = |e: &str| Filter::<crate::Snapshot>::parse(&[e.to_string()]).unwrap();
        assert!(snapshots("kind==active").matches(&snapshot));
        assert!(!snapshots("parent").matches(&snapshot), "no parent");
        assert!(Filter::<crate::ContentBlob>::parse(&["status==x".to_string()]).is_err());
    }

    #[test]
    fn errors_point_at_the_column() {
        let cases = [
            ("type=exit", 5, "expected ==, != or ~="),
            ("type==exit,", 12, "expected a field name"),
            ("", 1, "expected a field name"),
            ("type==exit,bogus==1", 12, "unknown field \"bogus\""),
            ("id~=(", 5, "invalid regular expression"),
            ("labels.\"open==x", 8, "unterminated quoted string"),
            ("labels==x", 1, "labels takes one key"),
            ("type.x==exit", 1, "type has no subfields"),
            ("id==\"a\"b", 8, "expected ',' or the end"),
            ("é==x", 1, "unknown field \"é\""),
            ("id==x,pid=y", 10, "expected ==, != or ~="),
        ];
        for (expr, column, message) in cases {
            let err = error(expr);
            assert_eq!(err.column, column, "{expr}: {err}");
            assert!(err.message.contains(message), "{expr}: {err}");
        }
        assert_eq!(
            error("type=exit").to_string(),
            "invalid filter \"type=exit\" at column 5: expected ==, != or ~=, a ',' or the end"
        );
    }

    #[test]
    fn a_huge_regex_is_refused() {
        let err = error("id~=(a{1000}){1000}");
        assert_eq!(err.column, 5);
        assert!(err.message.contains("invalid regular expression"), "{err}");
    }
}
