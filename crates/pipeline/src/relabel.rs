//! Prometheus relabeling (`relabel_configs`, `metric_relabel_configs`), with the
//! semantics and configuration checks of Prometheus' `model/relabel`:
//!
//! - defaults: `separator: ";"`, `regex: "(.*)"`, `replacement: "$1"`,
//!   `action: replace`; regexes are fully anchored (`^(?:regex)$`).
//! - `$1`, `${1}`, `$name` and `${name}` in `target_label` and `replacement` expand as
//!   Go's `Regexp.Expand` does (the longest name wins: `$1x` is the group named `1x`,
//!   and an unknown group expands to nothing; `$$` is a `$`).
//! - `hashmod` is the last 8 bytes of the MD5 of the joined source values, big-endian,
//!   modulo `modulus`, so targets shard exactly as they do in Prometheus.
//! - a label set to an empty value is deleted.

use std::fmt;

use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Serialize};
use sightline_model::{Labels, LabelsBuilder};

use crate::{Error, Result};

/// The default `regex`: everything.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelabelAction {
    /// Writes the expanded `replacement` to the expanded `target_label` when `regex`
    /// matches the joined source values.
    #[default]
    Replace,
    /// Keeps the set only when `regex` matches the joined source values.
    Keep,
    /// Drops the set when `regex` matches the joined source values.
    Drop,
    /// Keeps the set only when the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the set when the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to the MD5 hash of the joined source values modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Deletes every label whose name matches `regex`.
    LabelDrop,
    /// Deletes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source values in lower case.
    Lowercase,
    /// Sets `target_label` to the joined source values in upper case.
    Uppercase,
}

impl RelabelAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::KeepEqual => "keepequal",
            RelabelAction::DropEqual => "dropequal",
            RelabelAction::HashMod => "hashmod",
            RelabelAction::LabelMap => "labelmap",
            RelabelAction::LabelDrop => "labeldrop",
            RelabelAction::LabelKeep => "labelkeep",
            RelabelAction::Lowercase => "lowercase",
            RelabelAction::Uppercase => "uppercase",
        }
    }

    /// Parses an action name, in any case (as Prometheus does).
    pub fn parse(name: &str) -> Result<RelabelAction> {
        let all = [
            RelabelAction::Replace,
            RelabelAction::Keep,
            RelabelAction::Drop,
            RelabelAction::KeepEqual,
            RelabelAction::DropEqual,
            RelabelAction::HashMod,
            RelabelAction::LabelMap,
            RelabelAction::LabelDrop,
            RelabelAction::LabelKeep,
            RelabelAction::Lowercase,
            RelabelAction::Uppercase,
        ];
        let lower = name.to_lowercase();
        all.into_iter()
            .find(|action| action.as_str() == lower)
            .ok_or_else(|| Error::InvalidRelabelConfig(format!("unknown relabel action {name:?}")))
    }
}

impl fmt::Display for RelabelAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fully anchored regular expression that remembers the text it was written as.
#[derive(Debug, Clone)]
pub struct RelabelRegex {
    source: String,
    anchored: Regex,
}

impl RelabelRegex {
    /// Compiles `^(?:source)$`.
    pub fn new(source: &str) -> Result<RelabelRegex> {
        let anchored = Regex::new(&format!("^(?:{source})$")).map_err(|e| Error::InvalidRegex {
            regex: source.to_string(),
            message: e.to_string(),
        })?;
        Ok(RelabelRegex {
            source: source.to_string(),
            anchored,
        })
    }

    /// The text as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }
}

impl Default for RelabelRegex {
    fn default() -> RelabelRegex {
        // The default pattern is a constant that compiles; failing here is a bug in
        // this file, caught by every test.
        #[allow(clippy::expect_used)]
        RelabelRegex::new(DEFAULT_REGEX).expect("the default relabel regex compiles")
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &RelabelRegex) -> bool {
        self.source == other.source
    }
}

/// One relabel rule, in Prometheus' YAML shape.
#[derive(Debug, Clone, PartialEq)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` into the rule's input.
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: RelabelRegex,
    /// For `hashmod`.
    pub modulus: u64,
    /// The label written (`replace`, `hashmod`, `lowercase`, `uppercase`) or compared
    /// (`keepequal`, `dropequal`).
    pub target_label: String,
    pub replacement: String,
    pub action: RelabelAction,
    /// Whether `source_labels` was written at all (`labeldrop`/`labelkeep` refuse it).
    source_labels_set: bool,
}

impl Default for RelabelConfig {
    fn default() -> RelabelConfig {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_string(),
            regex: RelabelRegex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_string(),
            action: RelabelAction::Replace,
            source_labels_set: false,
        }
    }
}

/// The YAML shape, every field optional.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    separator: Option<String>,
    /// `Some(None)` for an explicit `regex: null` (the empty pattern in Prometheus).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_present"
    )]
    regex: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
}

/// Marks a field as present even when its value is `null`.
fn deserialize_present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl RelabelConfig {
    /// A rule from its YAML fields (absent ones take Prometheus' defaults), validated.
    fn from_raw(raw: RawRelabelConfig) -> Result<RelabelConfig> {
        let regex = match raw.regex {
            None => RelabelRegex::default(),
            // `regex:` with no value is the empty pattern, as in Prometheus.
            Some(None) => RelabelRegex::new("")?,
            Some(Some(source)) => RelabelRegex::new(&source)?,
        };
        let action = match raw.action {
            None => RelabelAction::Replace,
            Some(name) if name.is_empty() => {
                return Err(Error::InvalidRelabelConfig(
                    "relabel action cannot be empty".into(),
                ));
            }
            Some(name) => RelabelAction::parse(&name)?,
        };
        let config = RelabelConfig {
            source_labels_set: raw.source_labels.is_some(),
            source_labels: raw.source_labels.unwrap_or_default(),
            separator: raw.separator.unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex,
            modulus: raw.modulus.unwrap_or(0),
            target_label: raw.target_label.unwrap_or_default(),
            replacement: raw
                .replacement
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action,
        };
        config.validate()?;
        Ok(config)
    }

    /// Prometheus' checks, with its messages.
    pub fn validate(&self) -> Result<()> {
        use RelabelAction::*;
        let action = self.action;
        let invalid = |message: String| Err(Error::InvalidRelabelConfig(message));
        if self.modulus == 0 && action == HashMod {
            return invalid(
                "relabel configuration for hashmod requires non-zero modulus".to_string(),
            );
        }
        let writes_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if writes_target && self.target_label.is_empty() {
            return invalid(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let target = &self.target_label;
        let bad_target = || {
            invalid(format!(
                "{target:?} is invalid 'target_label' for {action} action"
            ))
        };
        if action == Replace {
            let templated = target.contains('$');
            if (!templated && !is_valid_label_name(target))
                || (templated && !is_valid_relabel_target(target))
            {
                return bad_target();
            }
        }
        let simple = matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual);
        if (simple || action == HashMod) && !is_valid_label_name(target) {
            return bad_target();
        }
        if simple && self.replacement != DEFAULT_REPLACEMENT {
            return invalid(format!("'replacement' can not be set for {action} action"));
        }
        if action == LabelMap && !is_valid_relabel_target(&self.replacement) {
            return invalid(format!(
                "{:?} is invalid 'replacement' for {action} action",
                self.replacement
            ));
        }
        let defaults_otherwise = self.modulus == 0
            && self.separator == DEFAULT_SEPARATOR
            && self.replacement == DEFAULT_REPLACEMENT;
        if matches!(action, KeepEqual | DropEqual)
            && !(defaults_otherwise && self.regex.as_str() == DEFAULT_REGEX)
        {
            return invalid(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && !(defaults_otherwise && !self.source_labels_set && target.is_empty())
        {
            return invalid(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }

    /// Applies this rule; false when it drops the set.
    fn apply(&self, builder: &mut LabelsBuilder) -> bool {
        let values: Vec<&str> = self
            .source_labels
            .iter()
            .map(|name| builder.get(name).unwrap_or(""))
            .collect();
        let value = values.join(&self.separator);
        match self.action {
            RelabelAction::Drop => return !self.regex.is_match(&value),
            RelabelAction::Keep => return self.regex.is_match(&value),
            RelabelAction::DropEqual => {
                return builder.get(&self.target_label).unwrap_or("") != value;
            }
            RelabelAction::KeepEqual => {
                return builder.get(&self.target_label).unwrap_or("") == value;
            }
            RelabelAction::Replace => self.replace(builder, &value),
            RelabelAction::Lowercase => {
                builder.set(self.target_label.clone(), value.to_lowercase());
            }
            RelabelAction::Uppercase => {
                builder.set(self.target_label.clone(), value.to_uppercase());
            }
            RelabelAction::HashMod => {
                let modulus = hashmod(&value, self.modulus);
                builder.set(self.target_label.clone(), modulus.to_string());
            }
            RelabelAction::LabelMap => {
                for label in builder.build().iter() {
                    if let Some(captures) = self.regex.anchored.captures(&label.name) {
                        let mut name = String::new();
                        captures.expand(&self.replacement, &mut name);
                        builder.set(name, label.value.clone());
                    }
                }
            }
            RelabelAction::LabelDrop | RelabelAction::LabelKeep => {
                let keep_matching = self.action == RelabelAction::LabelKeep;
                for label in builder.build().iter() {
                    if self.regex.is_match(&label.name) != keep_matching {
                        builder.delete(&label.name);
                    }
                }
            }
        }
        true
    }

    fn replace(&self, builder: &mut LabelsBuilder, value: &str) {
        let Some(captures) = self.regex.anchored.captures(value) else {
            return;
        };
        let mut target = String::new();
        captures.expand(&self.target_label, &mut target);
        if !is_valid_label_name(&target) {
            return;
        }
        let mut replacement = String::new();
        captures.expand(&self.replacement, &mut replacement);
        if replacement.is_empty() {
            builder.delete(&target);
        } else {
            builder.set(target, replacement);
        }
    }
}

impl<'de> Deserialize<'de> for RelabelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawRelabelConfig::deserialize(deserializer)?;
        RelabelConfig::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RelabelConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawRelabelConfig {
            source_labels: self.source_labels_set.then(|| self.source_labels.clone()),
            separator: Some(self.separator.clone()),
            regex: Some(Some(self.regex.as_str().to_string())),
            modulus: (self.modulus != 0).then_some(self.modulus),
            target_label: (!self.target_label.is_empty()).then(|| self.target_label.clone()),
            replacement: Some(self.replacement.clone()),
            action: Some(self.action.as_str().to_string()),
        };
        raw.serialize(serializer)
    }
}

/// Applies `configs` in order to `labels`; `None` when a rule drops the set.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    let mut builder = labels.to_builder();
    process_builder(&mut builder, configs).then(|| builder.build())
}

/// Like [`process`] on a builder the caller owns; false when a rule drops the set.
pub fn process_builder(builder: &mut LabelsBuilder, configs: &[RelabelConfig]) -> bool {
    configs.iter().all(|config| config.apply(builder))
}

/// Prometheus' `hashmod`: the last 8 bytes of MD5(`value`), big-endian, mod `modulus`.
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    let digest = Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(tail) % modulus.max(1)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Prometheus' `relabelTarget`: `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`, i.e. a
/// label name in which `$name`/`${name}` references may stand anywhere but first
/// characters must not be digits.
fn is_valid_relabel_target(text: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    // The pattern is a sequence of "starters" ([a-zA-Z_] or a reference) each followed
    // by word characters; so: the first item must be a starter, then anything that is
    // a word character or a reference.
    let mut first = true;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'$' {
            i += 1;
            if bytes.get(i) == Some(&b'{') {
                let length = bytes[i + 1..].iter().take_while(|b| word(**b)).count();
                if length == 0 || bytes.get(i + 1 + length) != Some(&b'}') {
                    return false;
                }
                i += length + 2;
            } else {
                let length = bytes[i..].iter().take_while(|b| word(**b)).count();
                if length == 0 {
                    return false;
                }
                i += length;
            }
        } else if (first && (b.is_ascii_alphabetic() || b == b'_')) || (!first && word(b)) {
            i += 1;
        } else {
            return false;
        }
        first = false;
    }
    true
}

#[cfg(test)]
mod tests;
