//! Finds the line of a key in the TOML text, so that a problem found after parsing (a
//! duplicate name, a missing field) still points at its line.

use std::fmt;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A path to a key, e.g. `binding[1].name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn new(key: &str) -> Self {
        Self(vec![Segment::Key(key.to_string())])
    }

    pub fn field(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Segment::Index(i));
        self
    }

    /// Reads the `a.b[2].c` form that [`Display`](fmt::Display) writes.
    fn parse(s: &str) -> Self {
        let mut segments = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut pieces = part.split('[');
            if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
                segments.push(Segment::Key(key.to_string()));
            }
            for idx in pieces {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    segments.push(Segment::Index(i));
                }
            }
        }
        Self(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

pub(super) struct SpanIndex<'t, 'i> {
    text: &'t str,
    root: &'t DeTable<'i>,
}

impl<'t, 'i> SpanIndex<'t, 'i> {
    pub fn new(text: &'t str, root: &'t DeTable<'i>) -> Self {
        Self { text, root }
    }

    /// The 1-based line of the deepest part of `path` present in the document.
    pub fn line_of(&self, path: &KeyPath) -> Option<usize> {
        let mut table = self.root;
        let mut best: Option<usize> = None;
        let mut current: Option<&Spanned<DeValue<'i>>> = None;
        for seg in &path.0 {
            let next = match (seg, current.map(|v| v.get_ref())) {
                (Segment::Key(k), None) => lookup(table, k),
                (Segment::Key(k), Some(DeValue::Table(t))) => {
                    table = t;
                    lookup(table, k)
                }
                (Segment::Index(i), Some(DeValue::Array(a))) => a.get(*i),
                _ => None,
            };
            match next {
                Some(v) => {
                    best = Some(v.span().start);
                    current = Some(v);
                }
                None => break,
            }
        }
        best.map(|offset| super::line_of(self.text, offset))
    }

    pub fn line_of_str(&self, path: &str) -> Option<usize> {
        self.line_of(&KeyPath::parse(path))
    }
}

fn lookup<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}
