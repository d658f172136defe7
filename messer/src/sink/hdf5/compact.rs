//! Compressing a finished recording. While recording, chunks are written
//! uncompressed so that a crash cannot leave an undecodable chunk; after a
//! clean end the file is copied, table by table and attribute by attribute,
//! into deflate-compressed datasets, and the copy replaces the original
//! (an atomic rename: a crash meanwhile leaves the uncompressed original).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use hdf5_sys::{h5a, h5p, h5s, h5t};

use super::Hdf5Error;

/// Rows per chunk of a compressed, finished table.
const CHUNK_ROWS: usize = 1024;

/// Bytes copied at a time.
const COPY_BYTES: usize = 4 << 20;

/// Copies every attribute of `from` to `to` byte for byte (messer writes
/// only fixed-size scalars and strings).
fn copy_attrs(from: &hdf5::Dataset, to: &hdf5::Dataset) -> Result<(), Hdf5Error> {
    let names = from.attr_names().map_err(Hdf5Error::lib)?;
    for name in names {
        let cname = std::ffi::CString::new(name.as_str()).map_err(|_| Hdf5Error::Name(name.clone()))?;
        // SAFETY: HDF5 C calls on ids opened and closed here; the buffer has
        // the attribute's storage size.
        let ok = hdf5::sync::sync(|| unsafe {
            let a = h5a::H5Aopen(from.id(), cname.as_ptr(), h5p::H5P_DEFAULT);
            if a < 0 {
                return false;
            }
            let tid = h5a::H5Aget_type(a);
            let sid = h5a::H5Aget_space(a);
            let size = h5a::H5Aget_storage_size(a) as usize;
            let mut buf = vec![0u8; size.max(16)];
            let mut ok = tid >= 0 && sid >= 0 && h5a::H5Aread(a, tid, buf.as_mut_ptr().cast()) >= 0;
            if ok {
                let b = h5a::H5Acreate2(to.id(), cname.as_ptr(), tid, sid, h5p::H5P_DEFAULT, h5p::H5P_DEFAULT);
                ok = b >= 0 && h5a::H5Awrite(b, tid, buf.as_ptr().cast()) >= 0;
                if b >= 0 {
                    h5a::H5Aclose(b);
                }
            }
            if tid >= 0 {
                h5t::H5Tclose(tid);
            }
            if sid >= 0 {
                h5s::H5Sclose(sid);
            }
            h5a::H5Aclose(a);
            ok
        });
        if !ok {
            return Err(Hdf5Error::Lib(format!("copying attribute {name}")));
        }
    }
    Ok(())
}

/// Rewrites the recording at `path` with compressed tables.
pub fn compact(path: &Path) -> Result<(), Hdf5Error> {
    let tmp = path.with_extension("h5.compacting");
    let result = (|| {
        let src = hdf5::File::open(path).map_err(Hdf5Error::lib)?;
        let dst = hdf5::File::create_excl(&tmp).map_err(Hdf5Error::lib)?;
        for ds in src.datasets().map_err(Hdf5Error::lib)? {
            let name = ds.name().trim_start_matches('/').to_string();
            let desc = ds.dtype().and_then(|t| t.to_descriptor()).map_err(Hdf5Error::lib)?;
            let dtype = hdf5::Datatype::from_descriptor(&desc).map_err(Hdf5Error::lib)?;
            let record = dtype.size();
            let n = ds.size();
            let mut b = dst.new_dataset_builder().empty_as(&desc).shape(0..).chunk(CHUNK_ROWS);
            if hdf5::filters::deflate_available() {
                b = b.shuffle().deflate(4);
            }
            let out = b.create(name.as_str()).map_err(Hdf5Error::lib)?;
            out.resize(n).map_err(Hdf5Error::lib)?;
            // In blocks of whole chunks, so that memory does not grow with
            // the length of the recording.
            let block = (COPY_BYTES / record.max(1)).max(1).div_ceil(CHUNK_ROWS) * CHUNK_ROWS;
            for start in (0..n).step_by(block) {
                let count = block.min(n - start);
                let raw = super::table::read_rows(&ds, record, start, count)?;
                super::table::write_rows(&out, &dtype, start, count, &raw)?;
            }
            copy_attrs(&ds, &out)?;
        }
        dst.flush().map_err(Hdf5Error::lib)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Keep the owner and mode the original was given.
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| Hdf5Error::Lib(format!("replacing {}: {e}", path.display())))
}
