//! Picks the layers a compression pass touches.

use crate::layer::Layer;

/// Chooses layers by path (exact or glob with `*` for one path segment and `**` for any
/// number) and by kind, with include and exclude lists. An empty include list matches
/// every layer that has parameters.
///
/// ```
/// use deepcompress_core::model::Selector;
/// let s = Selector::kinds(&["Linear"]).exclude("classifier.*");
/// assert!(s.matches_path("features.3"));
/// assert!(!s.matches_path("classifier.2"));
/// assert!(Selector::path("features.*").matches_path("features.0"));
/// assert!(!Selector::path("features.*").matches_path("features.0.body"));
/// assert!(Selector::path("**.body.*").matches_path("layer1.0.body.3"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    include: Vec<String>,
    exclude: Vec<String>,
    kinds: Vec<String>,
}

impl Selector {
    /// Every layer with parameters.
    pub fn all() -> Self {
        Self::default()
    }

    /// Layers whose path matches `pattern` (exact or glob).
    pub fn path(pattern: &str) -> Self {
        Self { include: vec![pattern.to_string()], ..Self::default() }
    }

    /// Layers of the given kinds (`Linear`, `Conv2d`, ...).
    pub fn kinds(kinds: &[&str]) -> Self {
        Self { kinds: kinds.iter().map(|k| k.to_string()).collect(), ..Self::default() }
    }

    /// Adds an include pattern.
    pub fn include(mut self, pattern: &str) -> Self {
        self.include.push(pattern.to_string());
        self
    }

    /// Adds an exclude pattern (excludes win over includes).
    pub fn exclude(mut self, pattern: &str) -> Self {
        self.exclude.push(pattern.to_string());
        self
    }

    /// Include patterns.
    pub fn includes(&self) -> &[String] {
        &self.include
    }

    /// True when the path passes the include and exclude patterns (kinds not checked).
    pub fn matches_path(&self, path: &str) -> bool {
        let inc = self.include.is_empty() || self.include.iter().any(|p| glob(p, path));
        inc && !self.exclude.iter().any(|p| glob(p, path))
    }

    /// True when the layer at `path` is selected: a leaf with parameters (or of a listed
    /// kind) whose path passes the patterns.
    pub fn matches(&self, path: &str, layer: &dyn Layer) -> bool {
        let kind_ok = if self.kinds.is_empty() {
            layer.children().is_empty() && !layer.params().is_empty()
        } else {
            self.kinds.iter().any(|k| k == layer.kind())
        };
        kind_ok && self.matches_path(path)
    }
}

/// Glob on dotted paths: `*` is one segment, `**` any number of segments (also none).
fn glob(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = if path.is_empty() { vec![] } else { path.split('.').collect() };
    glob_segments(&p, &s)
}

fn glob_segments(p: &[&str], s: &[&str]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((&"**", rest)) => (0..=s.len()).any(|i| glob_segments(rest, &s[i..])),
        Some((head, rest)) => match s.split_first() {
            Some((seg, tail)) => segment_matches(head, seg) && glob_segments(rest, tail),
            None => false,
        },
    }
}

/// One segment with `*` wildcards inside it (`conv*` matches `conv1`).
fn segment_matches(p: &str, s: &str) -> bool {
    match p.split_once('*') {
        None => p == s,
        Some((pre, post)) => {
            s.len() >= pre.len()
                && s.starts_with(pre)
                && (0..=s.len() - pre.len()).any(|i| segment_matches(post, &s[pre.len() + i..]))
        }
    }
}
