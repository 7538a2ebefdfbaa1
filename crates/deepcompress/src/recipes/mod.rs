//! Published compression recipes, end to end, on top of the passes.

mod deep_compression;

pub use deep_compression::{
    DeepCompression, DeepCompressionReport, PruneTarget, StageRow, StageTable, stage_table,
};
