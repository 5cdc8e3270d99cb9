//! Limits on metric metadata, which clients send freely: help and unit texts are
//! truncated and the number of metric families per store is capped.

use std::collections::HashMap;

use sightline_model::MetricMetadata;

/// Longest help text kept (bytes; longer ones are cut at a character boundary).
pub(crate) const MAX_HELP_BYTES: usize = 1024;
/// Longest unit kept (bytes).
pub(crate) const MAX_UNIT_BYTES: usize = 128;
/// Metric families with metadata per store; entries for further families are dropped.
pub(crate) const MAX_METADATA_ENTRIES: usize = 100_000;

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What [`update`] did with one entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetadataUpdate {
    /// Empty family name or the same as stored.
    Unchanged,
    /// Stored (limited); log it.
    Changed(MetricMetadata),
    /// A new family beyond [`MAX_METADATA_ENTRIES`]: ignored.
    Dropped,
}

/// Stores `metadata` (help and unit truncated) in `map` unless it is unchanged or
/// the map is full.
pub(crate) fn update(
    map: &mut HashMap<String, MetricMetadata>,
    metadata: &MetricMetadata,
) -> MetadataUpdate {
    if metadata.metric_family_name.is_empty() {
        return MetadataUpdate::Unchanged;
    }
    let help = truncate(&metadata.help, MAX_HELP_BYTES);
    let unit = truncate(&metadata.unit, MAX_UNIT_BYTES);
    match map.get(&metadata.metric_family_name) {
        Some(stored)
            if stored.help == help
                && stored.unit == unit
                && stored.metric_type == metadata.metric_type =>
        {
            return MetadataUpdate::Unchanged;
        }
        Some(_) => {}
        None if map.len() >= MAX_METADATA_ENTRIES => return MetadataUpdate::Dropped,
        None => {}
    }
    let limited = MetricMetadata {
        metric_family_name: metadata.metric_family_name.clone(),
        metric_type: metadata.metric_type,
        help: help.to_owned(),
        unit: unit.to_owned(),
    };
    map.insert(limited.metric_family_name.clone(), limited.clone());
    MetadataUpdate::Changed(limited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_model::MetricType;

    fn entry(name: &str, help: &str, unit: &str) -> MetricMetadata {
        MetricMetadata {
            metric_family_name: name.to_owned(),
            metric_type: MetricType::Counter,
            help: help.to_owned(),
            unit: unit.to_owned(),
        }
    }

    #[test]
    fn texts_are_truncated_and_families_capped() {
        let mut map = HashMap::new();
        let long_help = "é".repeat(MAX_HELP_BYTES); // 2 bytes per char
        let MetadataUpdate::Changed(stored) =
            update(&mut map, &entry("a", &long_help, &"u".repeat(1000)))
        else {
            panic!("not stored");
        };
        assert_eq!(stored.help.len(), MAX_HELP_BYTES);
        assert_eq!(stored.unit.len(), MAX_UNIT_BYTES);
        assert_eq!(
            update(&mut map, &entry("a", &long_help, &"u".repeat(1000))),
            MetadataUpdate::Unchanged
        );
        for i in 1..MAX_METADATA_ENTRIES {
            update(&mut map, &entry(&i.to_string(), "", ""));
        }
        assert_eq!(map.len(), MAX_METADATA_ENTRIES);
        assert_eq!(
            update(&mut map, &entry("one too many", "", "")),
            MetadataUpdate::Dropped
        );
        // Existing families still update.
        assert!(matches!(
            update(&mut map, &entry("a", "new", "")),
            MetadataUpdate::Changed(_)
        ));
        assert_eq!(map.len(), MAX_METADATA_ENTRIES);
    }
}
