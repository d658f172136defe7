//! The HDF5 file: tables of the original Messer's layout plus metadata.

pub mod attrs;
pub mod compact;
pub mod table;

use std::path::{Path, PathBuf};

pub use attrs::AttrValue;
pub use table::Table;

/// What can go wrong writing HDF5.
#[derive(Debug, thiserror::Error)]
pub enum Hdf5Error {
    #[error("HDF5: {0}")]
    Lib(String),
    #[error("HDF5 call {0} failed")]
    Call(&'static str),
    #[error("invalid HDF5 name {0:?}")]
    Name(String),
    #[error("cannot create {path}: {reason}")]
    Create { path: PathBuf, reason: String },
}

impl Hdf5Error {
    pub(crate) fn lib(e: hdf5::Error) -> Self {
        // HDF5's messages span lines; errors are reported on one.
        Hdf5Error::Lib(e.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// Largest size of the file's metadata cache, counted in on-disk bytes
/// (HDF5's default: 32 MiB). A node of a chunk index takes ~2.5 KB on disk
/// but ~18 KB in memory (its keys are unpacked for 32 dimensions), and the
/// index gains a node every second or two at 10 ms: with the default cap
/// messer's RSS grew 16 MB in 30 minutes at 10 ms, with 2 MiB still by
/// ~20 KB/s at 1 ms. Appending touches only the newest nodes and the table
/// headers, so a small cache costs no hits; with this one RSS stays flat.
const METADATA_CACHE_MAX: usize = 128 << 10;

/// Creates a new HDF5 file at `path`; fails if it exists. The file is not
/// locked: readers (`messer inspect`, h5py, pandas) may open it while rows
/// are appended and see what the last flush wrote. Locking would keep them
/// out until the end; it guards against a second writer, and messer is the
/// only one (the file is created with O_EXCL).
pub fn create_file(path: &Path) -> Result<hdf5::File, Hdf5Error> {
    let mdc = hdf5::file::MetadataCacheConfig {
        initial_size: 128 << 10,
        min_size: 64 << 10,
        max_size: METADATA_CACHE_MAX,
        max_increment: 64 << 10,
        ..Default::default()
    };
    hdf5::File::with_options()
        .with_fapl(|p| p.mdc_config(&mdc).file_locking(false))
        .create_excl(path)
        .map_err(|e| Hdf5Error::Create { path: path.to_path_buf(), reason: e.to_string() })
}

/// Flushes everything written so far to the operating system.
pub fn flush(file: &hdf5::File) -> Result<(), Hdf5Error> {
    file.flush().map_err(Hdf5Error::lib)
}
