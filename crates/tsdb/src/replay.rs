//! WAL replay at open: series records first (so every sample finds its series),
//! then samples, exemplars and metadata.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use sightline_wal::SegmentId;

use crate::Result;
use crate::db::Db;
use crate::metadata::{self as metadata_limits, MetadataUpdate};
use crate::wal_records::{self, WalEntry};

impl Db {
    /// Rebuilds the head, exemplars and metadata from the WAL.
    pub(crate) fn replay(&self) -> Result<()> {
        let mut next_ref = 0u64;
        // Records that pass their checksum but do not decode (a bug or a foreign
        // format), per segment: skipped, and reported loudly below.
        let mut undecodable: BTreeMap<SegmentId, (u64, String)> = BTreeMap::new();
        self.wal.replay(|segment, record| -> Result<()> {
            match wal_records::decode(record) {
                Ok(entries) => {
                    for entry in entries {
                        match entry {
                            WalEntry::Series(series) => {
                                for (series_ref, labels) in series {
                                    self.head.replay_series(series_ref, &labels);
                                    next_ref = next_ref.max(series_ref.saturating_add(1));
                                }
                            }
                            WalEntry::NextRef(next) => next_ref = next_ref.max(next),
                            _ => {}
                        }
                    }
                }
                Err(error) => {
                    let entry = undecodable
                        .entry(segment)
                        .or_insert_with(|| (0, error.to_string()));
                    entry.0 += 1;
                }
            }
            Ok(())
        })?;
        self.head.reserve_ids(next_ref);
        let mut replayed = 0u64;
        let mut skipped = 0u64;
        self.wal.replay(|segment, record| -> Result<()> {
            let Ok(entries) = wal_records::decode(record) else {
                return Ok(());
            };
            for entry in entries {
                match entry {
                    WalEntry::Samples(samples) => {
                        let mut guard = self.head.append_guard();
                        let mut newest = i64::MIN;
                        for sample in &samples {
                            newest = newest.max(sample.t);
                            if self.head.replay_sample(
                                &mut guard,
                                sample.series,
                                sample.t,
                                sample.v,
                            ) {
                                replayed += 1;
                            } else {
                                skipped += 1;
                            }
                        }
                        let mut segments = self.segment_max_time.lock();
                        let entry = segments.entry(segment).or_insert(i64::MIN);
                        *entry = (*entry).max(newest);
                    }
                    WalEntry::Exemplars(exemplars) => {
                        let mut ring = self.exemplars.lock();
                        for exemplar in exemplars {
                            ring.push(exemplar, self.options.max_exemplars);
                        }
                    }
                    WalEntry::Metadata(metadata) => {
                        let mut map = self.metadata.lock();
                        for m in &metadata {
                            if metadata_limits::update(&mut map, m) == MetadataUpdate::Dropped {
                                self.metadata_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    WalEntry::Series(_) | WalEntry::NextRef(_) => {}
                }
            }
            Ok(())
        })?;
        self.head.finish_replay();
        // Series whose samples are all persisted already need not stay in the head.
        self.head.truncate(self.head.min_valid());
        for (segment, (records, first_error)) in &undecodable {
            tracing::error!(
                segment,
                records,
                first_error = %first_error,
                "wal records that pass their checksum but do not decode were skipped: their samples are lost"
            );
        }
        tracing::info!(
            series = self.head.num_series(),
            samples = replayed,
            skipped_samples = skipped,
            "wal replayed"
        );
        Ok(())
    }
}
