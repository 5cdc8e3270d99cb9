//! Per-series label limits (the server's `limits.max_label_*` settings) on model label
//! sets, with messages that name the limit.

use sightline_model::Labels;

/// Bounds on one series' labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLimits {
    /// Most labels, `__name__` included.
    pub max_label_names_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
}

impl Default for LabelLimits {
    fn default() -> LabelLimits {
        LabelLimits {
            max_label_names_per_series: 40,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
        }
    }
}

impl LabelLimits {
    /// Why `labels` breaks a limit, or `Ok`.
    pub fn check(&self, labels: &Labels) -> Result<(), String> {
        if labels.len() > self.max_label_names_per_series {
            return Err(format!(
                "series {labels} has {} labels; limit is {} (max_label_names_per_series)",
                labels.len(),
                self.max_label_names_per_series
            ));
        }
        for label in labels {
            if label.name.len() > self.max_label_name_bytes {
                return Err(format!(
                    "label name {:?} is {} bytes long; limit is {} (max_label_name_bytes)",
                    truncated(&label.name),
                    label.name.len(),
                    self.max_label_name_bytes
                ));
            }
            if label.value.len() > self.max_label_value_bytes {
                return Err(format!(
                    "value of label {:?} is {} bytes long; limit is {} (max_label_value_bytes)",
                    truncated(&label.name),
                    label.value.len(),
                    self.max_label_value_bytes
                ));
            }
        }
        Ok(())
    }
}

/// At most 64 characters of `text`.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_themselves() {
        let limits = LabelLimits {
            max_label_names_per_series: 2,
            max_label_name_bytes: 3,
            max_label_value_bytes: 4,
        };
        assert!(limits.check(&Labels::from_pairs([("a", "b")])).is_ok());
        let many = Labels::from_pairs([("a", "1"), ("b", "2"), ("c", "3")]);
        assert!(
            limits
                .check(&many)
                .unwrap_err()
                .contains("max_label_names_per_series")
        );
        let long_name = Labels::from_pairs([("abcd", "1")]);
        assert!(
            limits
                .check(&long_name)
                .unwrap_err()
                .contains("max_label_name_bytes")
        );
        let long_value = Labels::from_pairs([("a", "12345")]);
        assert!(
            limits
                .check(&long_value)
                .unwrap_err()
                .contains("max_label_value_bytes")
        );
    }
}
