//! Configuration: TOML files in layers, `--set` overrides, typed plugin configs, and every problem
//! reported at once with file, line and key path.
//!
//! A run's config is a TOML document naming its instrument (`instrument = "alpide"`) with the
//! plugin's keys beside it. Layers merge in order (file < later file < `--set key=value`), and a
//! plugin turns the merged document into its typed config with [`ConfigDoc::parse`], which
//! collects *all* unknown keys, wrong types, bad units and out-of-range values (from
//! [`Validate`]) instead of stopping at the first, and names where each came from.
//!
//! Plugin config structs are declared with [`config_struct!`](crate::config_struct), which keeps
//! the one home of each default beside its doc comment and lets [`commented_toml`] print the
//! default config with those comments (`caliper config <plugin>`).
//!
//! ```
//! use caliper_core::config::{ConfigDoc, Validate, Problems};
//! use caliper_core::units::Length;
//!
//! caliper_core::config_struct! {
//!     /// Example settings.
//!     pub struct Example {
//!         /// Pixel pitch.
//!         pub pitch: Length = Length::from_base(0.02924),
//!         /// Spatial cut in units of the pitch (> 0).
//!         pub cut: f64 = 3.0,
//!     }
//! }
//! impl Validate for Example {
//!     fn validate(&self, p: &mut Problems) {
//!         p.check(self.cut > 0.0, "cut", "must be positive");
//!     }
//! }
//!
//! let doc = ConfigDoc::from_str_named("instrument = \"x\"\npitch = \"2us\"\ncolour = 1\ncut = -1",
//!     "example.toml").unwrap();
//! let errors = doc.parse::<Example>().unwrap_err();
//! assert_eq!(errors.len(), 3); // bad unit, unknown key, out of range: all at once
//! assert!(errors.to_string().contains("example.toml:2"));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where a config layer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// A named text (tests, embedded configs).
    Named(String),
    /// A `--set key=value` override from the command line.
    Override(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Named(n) => f.write_str(n),
            Origin::Override(s) => write!(f, "--set {s}"),
        }
    }
}

/// One config problem: where, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The layer the key came from, if known.
    pub origin: Option<Origin>,
    /// 1-based line in that file, if known.
    pub line: Option<usize>,
    /// Dotted key path (`clustering.pitch`, `planes[2].position`); empty for the whole document.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.line) {
            (Some(o @ Origin::Override(_)), _) => write!(f, "{o}: ")?,
            (Some(o), Some(l)) => write!(f, "{o}:{l}: ")?,
            (Some(o), None) => write!(f, "{o}: ")?,
            (None, _) => {}
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "key `{}`: {}", self.key, self.message)
        }
    }
}

/// All problems found in a config, reported together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// One problem without location.
    pub fn single(key: &str, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            origin: None,
            line: None,
            key: key.into(),
            message: message.into(),
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} config problem{}:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Problems found by a config's own [`Validate`] check (ranges, consistency between keys).
#[derive(Debug, Default)]
pub struct Problems {
    items: Vec<(String, String)>,
}

impl Problems {
    /// Record a problem with a key (dotted path from the plugin's top level).
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.items.push((key.into(), message.into()));
    }
    /// Record a problem unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, message: &str) {
        if !ok {
            self.push(key, message);
        }
    }
    /// The problems recorded, as (key, message).
    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }
}

/// Checks a typed config beyond what its types say (ranges, relations between keys).
pub trait Validate {
    /// Push every problem found; the default finds none.
    fn validate(&self, _problems: &mut Problems) {}
}

/// Field documentation of a config type, for printing commented defaults.
///
/// Implemented by [`config_struct!`](crate::config_struct) for config structs; leaf types (numbers,
/// strings, quantities, enums) use the default, which documents nothing below themselves.
pub trait ConfigDocs {
    /// Push `(dotted key, doc text)` for every field below `prefix`.
    fn docs(_prefix: &str, _out: &mut Vec<(String, String)>) {}
}

macro_rules! leaf_docs {
    ($($t:ty),*) => { $(impl ConfigDocs for $t {})* };
}
leaf_docs!(
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    usize,
    isize,
    f32,
    f64,
    String,
    PathBuf,
    crate::units::Length,
    crate::units::Time,
    crate::units::Angle,
    crate::units::Energy,
    crate::units::Charge,
    crate::units::Voltage,
    crate::units::MagneticField,
    crate::units::Temperature
);
impl<T> ConfigDocs for Vec<T> {}
impl<T> ConfigDocs for Option<T> {}
impl<T, const N: usize> ConfigDocs for [T; N] {}
impl<K, V> ConfigDocs for BTreeMap<K, V> {}
impl<K, V, S> ConfigDocs for HashMap<K, V, S> {}

/// Declare a plugin config struct: fields with doc comments and defaults in one place.
///
/// Generates the struct with `#[serde(default, deny_unknown_fields)]`, a `Default` impl from the
/// `= default` expressions, and [`ConfigDocs`]. Nested config structs are fields whose type was
/// declared the same way. Enums used as fields need `impl ConfigDocs for MyEnum {}`.
#[macro_export]
macro_rules! config_struct {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $fdoc:literal])*
                $(#[serde($($sattr:tt)*)])*
                $fvis:vis $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        $vis struct $name {
            $(
                $(#[doc = $fdoc])*
                $(#[serde($($sattr)*)])*
                $fvis $field: $ty,
            )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl $crate::config::ConfigDocs for $name {
            fn docs(prefix: &str, out: &mut Vec<(String, String)>) {
                $(
                    let key = format!("{}{}", prefix, stringify!($field));
                    let doc: &[&str] = &[$($fdoc),*];
                    out.push((key.clone(), doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join("\n")));
                    <$ty as $crate::config::ConfigDocs>::docs(&format!("{}.", key), out);
                )*
            }
        }
    };
}

/// A parsed layer: its values and the line of each key path.
#[derive(Debug, Clone)]
struct Layer {
    origin: Origin,
    lines: HashMap<String, usize>,
}

/// A config document: layers merged in order, with where each key came from.
#[derive(Debug, Clone, Default)]
pub struct ConfigDoc {
    layers: Vec<Layer>,
    merged: toml::Table,
}

impl ConfigDoc {
    /// An empty document (every key at its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Read a TOML file as the first (or next) layer.
    pub fn from_file(path: &Path) -> Result<Self, ConfigErrors> {
        let mut doc = Self::new();
        doc.add_file(path)?;
        Ok(doc)
    }

    /// Parse TOML text, naming it for messages.
    pub fn from_str_named(text: &str, name: &str) -> Result<Self, ConfigErrors> {
        let mut doc = Self::new();
        doc.add_text(text, Origin::Named(name.into()))?;
        Ok(doc)
    }

    /// Add a file on top of the layers so far.
    pub fn add_file(&mut self, path: &Path) -> Result<(), ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                origin: Some(Origin::File(path.into())),
                line: None,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        self.add_text(&text, Origin::File(path.into()))
    }

    /// Add TOML text on top of the layers so far; every syntax error is reported.
    pub fn add_text(&mut self, text: &str, origin: Origin) -> Result<(), ConfigErrors> {
        let (spanned, errors) = toml::de::DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            return Err(ConfigErrors(
                errors
                    .iter()
                    .map(|e| ConfigError {
                        origin: Some(origin.clone()),
                        line: e.span().map(|s| line_of(text, s.start)),
                        key: String::new(),
                        message: format!("TOML syntax: {}", e.message()),
                    })
                    .collect(),
            ));
        }
        let mut lines = HashMap::new();
        collect_lines(text, spanned.get_ref(), "", &mut lines);
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                origin: Some(origin.clone()),
                line: e.span().map(|s| line_of(text, s.start)),
                key: String::new(),
                message: format!("TOML: {}", e.message()),
            }])
        })?;
        merge_tables(&mut self.merged, table);
        self.layers.push(Layer { origin, lines });
        Ok(())
    }

    /// Apply a `key=value` override (`clustering.pitch=30um`, `tracking.min_hits_on_track=5`).
    /// The value is read as a TOML value, and as a string if that fails.
    pub fn add_override(&mut self, assignment: &str) -> Result<(), ConfigErrors> {
        let origin = Origin::Override(assignment.into());
        let Some((key, raw)) = assignment.split_once('=') else {
            return Err(ConfigErrors(vec![ConfigError {
                origin: Some(origin),
                line: None,
                key: String::new(),
                message: "expected key=value, e.g. --set clustering.pitch=29.24um".into(),
            }]));
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|s| s.trim().is_empty()) {
            return Err(ConfigErrors(vec![ConfigError {
                origin: Some(origin),
                line: None,
                key: key.into(),
                message: "empty key segment".into(),
            }]));
        }
        let raw = raw.trim();
        let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut t) => t
                .remove("v")
                .unwrap_or_else(|| toml::Value::String(raw.into())),
            Err(_) => toml::Value::String(raw.into()),
        };
        let mut table = toml::Table::new();
        let segs: Vec<&str> = key.split('.').map(str::trim).collect();
        insert_path(&mut table, &segs, value);
        let mut lines = HashMap::new();
        lines.insert(key.to_string(), 0);
        merge_tables(&mut self.merged, table);
        self.layers.push(Layer { origin, lines });
        Ok(())
    }

    /// The instrument this config is for (`instrument = "..."`), if it says.
    pub fn instrument(&self) -> Option<&str> {
        self.merged.get("instrument").and_then(|v| v.as_str())
    }

    /// The merged table (all layers), including `instrument`.
    pub fn merged(&self) -> &toml::Table {
        &self.merged
    }

    /// The files this config was read from, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.layers
            .iter()
            .filter_map(|l| match &l.origin {
                Origin::File(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Where a key path was set: the highest layer that sets it or its nearest parent.
    pub fn locate(&self, key: &str) -> (Option<Origin>, Option<usize>) {
        let mut probe = key.to_string();
        loop {
            for layer in self.layers.iter().rev() {
                if let Some(&line) = layer.lines.get(&probe) {
                    let line = if matches!(layer.origin, Origin::Override(_)) {
                        None
                    } else {
                        Some(line)
                    };
                    return (Some(layer.origin.clone()), line);
                }
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe.truncate(i),
                None => break,
            }
        }
        (self.layers.last().map(|l| l.origin.clone()), None)
    }

    fn error_at(&self, key: String, message: String) -> ConfigError {
        let (origin, line) = self.locate(&key);
        ConfigError {
            origin,
            line,
            key,
            message,
        }
    }

    /// Deserialize the plugin's typed config from the merged document (without the top-level
    /// `instrument` key), collecting every problem: unknown keys, wrong types, bad units, and what
    /// [`Validate`] finds. Keys with problems fall back to their defaults while the rest is read,
    /// so one run of this reports them all.
    pub fn parse<T: DeserializeOwned + Validate>(&self) -> Result<T, ConfigErrors> {
        let mut value = toml::Value::Table(self.merged.clone());
        if let toml::Value::Table(t) = &mut value {
            t.remove("instrument");
        }
        let mut errors = Vec::new();
        // Each round removes one offending key; a document has finitely many keys.
        for _ in 0..1000 {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(config) => {
                    let mut problems = Problems::default();
                    config.validate(&mut problems);
                    for (k, m) in problems.items {
                        errors.push(self.error_at(k, m));
                    }
                    return if errors.is_empty() {
                        Ok(config)
                    } else {
                        Err(sorted(errors))
                    };
                }
                Err(e) => {
                    let mut segs = path_segments(e.path());
                    let message = e.inner().message().to_string();
                    if let Some(field) = unknown_field_name(&message)
                        && !matches!(segs.last(), Some(Seg::Key(k)) if *k == field)
                    {
                        segs.push(Seg::Key(field));
                    }
                    let key = render_path(&segs);
                    errors.push(self.error_at(key, tidy_message(&message)));
                    if segs.is_empty() || !remove_path(&mut value, &segs) {
                        // Nothing left to remove: report what we have.
                        return Err(sorted(errors));
                    }
                }
            }
        }
        Err(sorted(errors))
    }
}

/// Problems in file order: by layer, then line.
fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by_key(|e| (e.origin.as_ref().map(|o| o.to_string()), e.line));
    ConfigErrors(errors)
}

/// Print a config value (usually a plugin's default) as TOML with each key's doc comment above it.
pub fn commented_toml<T: Serialize + ConfigDocs>(
    config: &T,
    header: &str,
    instrument: &str,
) -> String {
    let mut docs = Vec::new();
    T::docs("", &mut docs);
    let docs: HashMap<String, String> = docs.into_iter().collect();
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&comment_line(line));
    }
    out.push_str(&format!(
        "instrument = {}\n",
        toml::Value::String(instrument.into())
    ));
    match toml::Value::try_from(config) {
        Ok(toml::Value::Table(t)) => write_table(&t, "", &docs, &mut out),
        Ok(_) | Err(_) => out.push_str("# (this config does not serialize to a TOML table)\n"),
    }
    out
}

fn comment_line(line: &str) -> String {
    if line.is_empty() {
        "#\n".into()
    } else {
        format!("# {line}\n")
    }
}

fn write_table(t: &toml::Table, prefix: &str, docs: &HashMap<String, String>, out: &mut String) {
    let is_section = |v: &toml::Value| {
        matches!(v, toml::Value::Table(_))
            || matches!(v, toml::Value::Array(a) if !a.is_empty() && a.iter().all(|x| x.is_table()))
    };
    for (k, v) in t.iter().filter(|(_, v)| !is_section(v)) {
        let key = format!("{prefix}{k}");
        out.push('\n');
        if let Some(d) = docs.get(&key) {
            for line in d.lines() {
                out.push_str(&comment_line(line));
            }
        }
        out.push_str(&format!("{} = {}\n", toml_key(k), v));
    }
    for (k, v) in t.iter().filter(|(_, v)| is_section(v)) {
        let key = format!("{prefix}{k}");
        out.push('\n');
        if let Some(d) = docs.get(&key) {
            for line in d.lines() {
                out.push_str(&comment_line(line));
            }
        }
        match v {
            toml::Value::Table(sub) => {
                out.push_str(&format!("[{key}]\n"));
                write_table(sub, &format!("{key}."), docs, out);
            }
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(sub) = item {
                        out.push_str(&format!("[[{key}]]\n"));
                        write_table(sub, &format!("{key}."), docs, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.into()
    } else {
        toml::Value::String(k.into()).to_string()
    }
}

/// The 1-based line of a byte offset in `text` (for messages that name a line).
pub fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn collect_lines(
    text: &str,
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    out: &mut HashMap<String, usize>,
) {
    for (k, v) in table.iter() {
        let key = format!("{prefix}{}", k.get_ref());
        out.entry(key.clone())
            .or_insert_with(|| line_of(text, k.span().start));
        collect_value_lines(text, v.get_ref(), &key, out);
    }
}

fn collect_value_lines(
    text: &str,
    value: &toml::de::DeValue<'_>,
    key: &str,
    out: &mut HashMap<String, usize>,
) {
    match value {
        toml::de::DeValue::Table(t) => collect_lines(text, t, &format!("{key}."), out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let ik = format!("{key}[{i}]");
                out.entry(ik.clone())
                    .or_insert_with(|| line_of(text, item.span().start));
                collect_value_lines(text, item.get_ref(), &ik, out);
            }
        }
        _ => {}
    }
}

/// Merge `top` into `base`: tables merge key by key, anything else replaces.
fn merge_tables(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge_tables(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn insert_path(table: &mut toml::Table, segs: &[&str], value: toml::Value) {
    match segs {
        [] => {}
        [last] => {
            table.insert((*last).into(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry((*first).to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                insert_path(t, rest, value);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Unknown => None,
        })
        .collect()
}

fn render_path(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn remove_path(value: &mut toml::Value, segs: &[Seg]) -> bool {
    match segs {
        [] => false,
        [last] => match (value, last) {
            (toml::Value::Table(t), Seg::Key(k)) => t.remove(k).is_some(),
            (toml::Value::Array(a), Seg::Index(i)) if *i < a.len() => {
                a.remove(*i);
                true
            }
            _ => false,
        },
        [first, rest @ ..] => match (value, first) {
            (toml::Value::Table(t), Seg::Key(k)) => {
                t.get_mut(k).is_some_and(|v| remove_path(v, rest))
            }
            (toml::Value::Array(a), Seg::Index(i)) => {
                a.get_mut(*i).is_some_and(|v| remove_path(v, rest))
            }
            _ => false,
        },
    }
}

/// serde's unknown-field message: "unknown field `foo`, expected one of `a`, `b`".
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

fn tidy_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        return format!(
            "unknown key{}",
            rest[end + 1..].replace(", expected", "; expected")
        );
    }
    message.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Length;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum Method {
        #[default]
        Frequency,
        Density,
    }
    impl ConfigDocs for Method {}

    crate::config_struct! {
        /// Inner section.
        pub struct Inner {
            /// Pixel pitch.
            pub pitch: Length = Length::from_base(0.02924),
            /// Hot-pixel method.
            pub method: Method = Method::Frequency,
        }
    }
    crate::config_struct! {
        /// Outer.
        pub struct Outer {
            /// A factor (> 0).
            pub factor: f64 = 100.0,
            /// Number of planes.
            pub planes: u32 = 7,
            /// Inner settings.
            pub inner: Inner = Inner::default(),
        }
    }
    impl Validate for Outer {
        fn validate(&self, p: &mut Problems) {
            p.check(self.factor > 0.0, "factor", "must be > 0");
        }
    }

    #[test]
    fn default_roundtrips_through_commented_toml() {
        let text = commented_toml(&Outer::default(), "Example header", "example");
        assert!(text.contains("# Pixel pitch."), "{text}");
        assert!(text.contains("[inner]"), "{text}");
        let doc = ConfigDoc::from_str_named(&text, "default").unwrap();
        assert_eq!(doc.instrument(), Some("example"));
        let back: Outer = doc.parse().unwrap();
        assert_eq!(back, Outer::default());
    }

    #[test]
    fn reports_every_problem_with_line_and_key() {
        let text = "instrument = \"example\"\nfactor = -2\nplanes = \"seven\"\nbogus = 1\n\n[inner]\npitch = \"29.24uu\"\nmethod = \"magic\"\nextra = true\n";
        let doc = ConfigDoc::from_str_named(text, "bad.toml").unwrap();
        let errs = doc.parse::<Outer>().unwrap_err();
        let by_key: HashMap<&str, &ConfigError> =
            errs.0.iter().map(|e| (e.key.as_str(), e)).collect();
        // Six problems in the file, all reported at once with their lines.
        assert_eq!(errs.len(), 6, "{errs}");
        assert_eq!(by_key["planes"].line, Some(3));
        assert_eq!(by_key["bogus"].line, Some(4));
        assert_eq!(by_key["inner.pitch"].line, Some(7));
        assert!(
            by_key["inner.pitch"].message.contains("unknown unit"),
            "{errs}"
        );
        assert_eq!(by_key["inner.method"].line, Some(8));
        assert_eq!(by_key["inner.extra"].line, Some(9));
        assert_eq!(by_key["factor"].line, Some(2));
        assert!(
            errs.to_string().contains("bad.toml:7: key `inner.pitch`"),
            "{errs}"
        );
    }

    #[test]
    fn overrides_take_precedence_and_are_named() {
        let mut doc =
            ConfigDoc::from_str_named("factor = 2.0\n[inner]\npitch = \"20um\"\n", "base").unwrap();
        doc.add_override("inner.pitch=30um").unwrap();
        doc.add_override("planes=6").unwrap();
        let c: Outer = doc.parse().unwrap();
        assert!((c.inner.pitch.um() - 30.0).abs() < 1e-12);
        assert_eq!(c.planes, 6);
        assert!((c.factor - 2.0).abs() < 1e-15);
        doc.add_override("factor=-1").unwrap();
        let errs = doc.parse::<Outer>().unwrap_err();
        assert_eq!(errs.0[0].origin, Some(Origin::Override("factor=-1".into())));
        assert!(doc.add_override("novalue").is_err());
    }

    #[test]
    fn syntax_errors_have_lines() {
        let errs = ConfigDoc::from_str_named("a = 1\nb = = 2\n", "syn.toml").unwrap_err();
        assert_eq!(errs.0[0].line, Some(2), "{errs}");
    }
}
