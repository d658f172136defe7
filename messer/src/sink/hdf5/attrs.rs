//! Attributes on HDF5 objects, written the way PyTables writes them:
//! strings as fixed-length ASCII scalars, numbers as native scalars.

use hdf5::Location;
use hdf5_sys::{h5a, h5p, h5s, h5t};

use super::Hdf5Error;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(String),
    F64(f64),
    I64(i64),
}

/// Writes (or replaces) attribute `name` on `loc`.
pub fn set(loc: &Location, name: &str, value: &AttrValue) -> Result<(), Hdf5Error> {
    if loc.attr_names().map_err(Hdf5Error::lib)?.iter().any(|n| n == name) {
        loc.delete_attr(name).map_err(Hdf5Error::lib)?;
    }
    match value {
        AttrValue::F64(v) => loc.new_attr::<f64>().create(name).and_then(|a| a.write_scalar(v)),
        AttrValue::I64(v) => loc.new_attr::<i64>().create(name).and_then(|a| a.write_scalar(v)),
        AttrValue::Str(s) => return set_fixed_ascii(loc, name, s),
    }
    .map_err(Hdf5Error::lib)
}

/// A NUL-padded fixed-length string attribute, as PyTables writes CLASS etc.
fn set_fixed_ascii(loc: &Location, name: &str, s: &str) -> Result<(), Hdf5Error> {
    let cname = std::ffi::CString::new(name).map_err(|_| Hdf5Error::Name(name.into()))?;
    // An empty fixed string must still have size >= 1.
    let mut bytes = s.as_bytes().to_vec();
    if bytes.is_empty() {
        bytes.push(0);
    }
    // SAFETY: plain HDF5 C calls on ids we create and close here, under the
    // crate's library lock; `loc` keeps the library initialised and the object open.
    hdf5::sync::sync(|| unsafe {
        let tid = h5t::H5Tcopy(*h5t::H5T_C_S1);
        if tid < 0 {
            return Err(Hdf5Error::Call("H5Tcopy"));
        }
        h5t::H5Tset_size(tid, bytes.len());
        h5t::H5Tset_strpad(tid, h5t::H5T_str_t::H5T_STR_NULLPAD);
        let sid = h5s::H5Screate(h5s::H5S_class_t::H5S_SCALAR);
        let aid = h5a::H5Acreate2(loc.id(), cname.as_ptr(), tid, sid, h5p::H5P_DEFAULT, h5p::H5P_DEFAULT);
        let ok = aid >= 0 && h5a::H5Awrite(aid, tid, bytes.as_ptr().cast()) >= 0;
        if aid >= 0 {
            h5a::H5Aclose(aid);
        }
        h5s::H5Sclose(sid);
        h5t::H5Tclose(tid);
        if ok { Ok(()) } else { Err(Hdf5Error::Call("H5Acreate2/H5Awrite")) }
    })
}
