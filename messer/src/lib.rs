//! messer: records the resource use of one process tree over time.
//!
//! The folders follow the pipeline: `targets` (what to record) → `probe`
//! (ebpf, procfs) → `sample` (windows, rates, the sampling loop) → `sink`
//! (the HDF5 file, the exporters) → `analysis` (reading files back), each
//! importing only from those before it and from `base` (leaf types: table
//! schemas and values, clocks). `record` wires one recording together.

pub mod analysis;
pub mod base;
pub mod cli;
pub mod probe;
pub mod record;
pub mod redact;
pub mod sample;
pub mod signals;
pub mod sink;
pub mod targets;
