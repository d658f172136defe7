//! Member offsets of kernel structures from the kernel's own BTF
//! (/sys/kernel/btf/vmlinux), so that nothing about `task_struct`'s layout is
//! hard-coded. Only what messer needs is parsed: struct and union members,
//! and the modifiers and typedefs between a member and its struct type.

use std::collections::HashMap;

/// A parse or lookup failure, with what was being looked for.
#[derive(Debug, thiserror::Error)]
#[error("kernel BTF: {0}")]
pub struct BtfError(pub String);

const MAGIC: u16 = 0xeb9f;

#[derive(Debug, Clone)]
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
struct Type {
    kind: u32,
    name: u32,
    /// Referenced type for pointers, modifiers and typedefs.
    ty: u32,
    /// Number of members, enumerators or parameters.
    vlen: usize,
    members: Vec<Member>,
}

const PTR: u32 = 2;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC_PROTO: u32 = 13;
const TYPE_TAG: u32 = 18;
const VAR: u32 = 14;
const DATASEC: u32 = 15;

/// Parsed BTF: types by id (id 0 is void) and the string section.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    by_name: HashMap<String, u32>,
    typedefs: HashMap<String, u32>,
    sections: HashMap<String, u32>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| BtfError(format!("truncated at byte {at}")))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_kernel() -> Result<Self, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path)
            .map_err(|e| BtfError(format!("cannot read {path} ({e}); this kernel was built without BTF")))?;
        Self::parse(&data).map_err(|e| BtfError(format!("{path} is not usable BTF ({})", e.0)))
    }

    /// Parses little-endian BTF.
    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != MAGIC {
            return Err(BtfError("not little-endian BTF".into()));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let types_at = hdr_len + type_off;
        let strings = b
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| BtfError("string section out of bounds".into()))?
            .to_vec();
        let mut types = vec![Type { kind: 0, name: 0, ty: 0, vlen: 0, members: Vec::new() }];
        let mut at = types_at;
        let end = types_at + type_len;
        while at < end {
            let name = u32_at(b, at)?;
            let info = u32_at(b, at + 4)?;
            let size_or_type = u32_at(b, at + 8)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let mut members = Vec::new();
            let extra = match kind {
                1 | 14 | 17 => 4, // INT, VAR, DECL_TAG
                3 => 12,          // ARRAY
                STRUCT | UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let off = u32_at(b, m + 8)?;
                        let bit_offset = if kind_flag { off & 0x00ff_ffff } else { off };
                        members.push(Member { name: u32_at(b, m)?, ty: u32_at(b, m + 4)?, bit_offset });
                    }
                    12 * vlen
                }
                6 | 13 => 8 * vlen, // ENUM, FUNC_PROTO
                DATASEC => {
                    // Each variable: its VAR type, its offset, its size.
                    for i in 0..vlen {
                        let v = at + i * 12;
                        members.push(Member { name: 0, ty: u32_at(b, v)?, bit_offset: u32_at(b, v + 4)? });
                    }
                    12 * vlen
                }
                19 => 12 * vlen,           // ENUM64
                2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
                k => return Err(BtfError(format!("unknown BTF kind {k}"))),
            };
            at += extra;
            types.push(Type { kind, name, ty: size_or_type, vlen, members });
        }
        let mut btf =
            Btf { types, strings, by_name: HashMap::new(), typedefs: HashMap::new(), sections: HashMap::new() };
        for id in 1..btf.types.len() {
            let t = &btf.types[id];
            if t.name == 0 {
                continue;
            }
            let n = btf.name(t.name).to_string();
            match t.kind {
                STRUCT => {
                    btf.by_name.entry(n).or_insert(id as u32);
                }
                DATASEC => {
                    btf.sections.insert(n, id as u32);
                }
                TYPEDEF if n.starts_with("btf_trace_") => {
                    btf.typedefs.insert(n, id as u32);
                }
                _ => {}
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        let len = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..len]).unwrap_or("")
    }

    /// Follows typedefs and modifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t) if matches!(t.kind, TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG) => id = t.ty,
                _ => break,
            }
        }
        id
    }

    /// Bit offset of member `name` in struct/union `id`, looking inside
    /// anonymous members (at most 16 deep: BTF that nests without end is
    /// corrupt); returns the offset and the member's type.
    fn member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        self.member_within(id, name, 16)
    }

    fn member_within(&self, id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        let t = self.types.get(self.resolve(id) as usize)?;
        if !matches!(t.kind, STRUCT | UNION) || depth == 0 {
            return None;
        }
        for m in &t.members {
            if m.name == 0 {
                if let Some((off, ty)) = self.member_within(m.ty, name, depth - 1) {
                    return Some((m.bit_offset.checked_add(off)?, ty));
                }
            } else if self.name(m.name) == name {
                return Some((m.bit_offset, m.ty));
            }
        }
        None
    }

    /// Byte offset of `path` (e.g. ["se", "sum_exec_runtime"]) in struct `strukt`.
    pub fn offset(&self, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
        let what = || format!("{strukt}.{}", path.join("."));
        let mut id = *self.by_name.get(strukt).ok_or_else(|| BtfError(format!("no struct {strukt}")))?;
        let mut bits = 0;
        for field in path {
            let (off, ty) = self.member(id, field).ok_or_else(|| BtfError(format!("no member {}", what())))?;
            bits = u32::checked_add(bits, off).ok_or_else(|| BtfError(format!("{} lies beyond 4 GiB", what())))?;
            id = ty;
        }
        if bits % 8 != 0 {
            return Err(BtfError(format!("{} is a bit field", what())));
        }
        Ok(bits / 8)
    }

    /// Size in bytes of struct `strukt`.
    pub fn size(&self, strukt: &str) -> Result<u32, BtfError> {
        let id = *self.by_name.get(strukt).ok_or_else(|| BtfError(format!("no struct {strukt}")))?;
        self.types.get(id as usize).map(|t| t.ty).ok_or_else(|| BtfError(format!("no struct {strukt}")))
    }

    /// Offset of variable `var` in data section `section` (e.g. a per-CPU
    /// variable's in `.data..percpu`).
    pub fn section_var(&self, section: &str, var: &str) -> Result<u32, BtfError> {
        let id = *self.sections.get(section).ok_or_else(|| BtfError(format!("no section {section}")))?;
        let vars = self.types.get(id as usize).map(|t| t.members.as_slice()).unwrap_or_default();
        vars.iter()
            .find(|v| self.types.get(v.ty as usize).is_some_and(|t| t.kind == VAR && self.name(t.name) == var))
            .map(|v| v.bit_offset)
            .ok_or_else(|| BtfError(format!("no variable {var} in {section}")))
    }

    /// Whether the kernel has struct `strukt`.
    pub fn has(&self, strukt: &str) -> bool {
        self.by_name.contains_key(strukt)
    }
}

impl Btf {
    /// Number of arguments a raw tracepoint passes (its TP_PROTO), from the
    /// kernel's `btf_trace_<name>` typedef (a pointer to a function whose
    /// first parameter is the probe's private data).
    pub fn tracepoint_args(&self, name: &str) -> Result<usize, BtfError> {
        let td = format!("btf_trace_{name}");
        let id = *self.typedefs.get(&td).ok_or_else(|| BtfError(format!("no tracepoint {name}")))?;
        let ptr = self.types.get(id as usize).and_then(|t| self.types.get(t.ty as usize)).filter(|t| t.kind == PTR);
        let proto = ptr.and_then(|p| self.types.get(self.resolve(p.ty) as usize)).filter(|t| t.kind == FUNC_PROTO);
        let proto = proto.ok_or_else(|| BtfError(format!("{td} is not a function pointer")))?;
        Ok(proto.vlen.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF: struct inner { u64 a; u64 b; }, struct outer { int x;
    /// union { struct inner in; }; } with `in` at byte 8.
    fn sample() -> Vec<u8> {
        let strings = b"\0inner\0a\0b\0outer\0x\0in\0u64\0".to_vec();
        let s = |name: &str| {
            strings
                .windows(name.len() + 1)
                .position(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0)
                .unwrap() as u32
        };
        let mut t = Vec::new();
        let mut push = |v: &[u32]| v.iter().for_each(|x| t.extend_from_slice(&x.to_le_bytes()));
        push(&[s("u64"), 1 << 24, 8, 64]); // 1: INT u64
        push(&[s("inner"), (4 << 24) | 2, 16, s("a"), 1, 0, s("b"), 1, 64]); // 2: struct inner
        push(&[0, (5 << 24) | 1, 16, s("in"), 2, 0]); // 3: anonymous union
        push(&[s("outer"), (4 << 24) | 2, 24, s("x"), 1, 0, 0, 3, 64]); // 4: struct outer
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn finds_nested_members_through_anonymous_unions() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.offset("outer", &["in", "b"]).unwrap(), 16);
        assert_eq!(btf.offset("inner", &["b"]).unwrap(), 8);
        assert_eq!(btf.size("outer").unwrap(), 24);
        assert!(btf.has("inner") && !btf.has("missing"));
        assert!(btf.offset("outer", &["nope"]).is_err());
        assert!(btf.offset("missing", &["a"]).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"hello, world, this is not btf").is_err());
    }

    #[test]
    fn reads_this_kernel() {
        // Every kernel messer's eBPF mode supports has BTF; skip where absent.
        let Ok(btf) = Btf::from_kernel() else { return };
        let off = btf.offset("task_struct", &["se", "sum_exec_runtime"]).unwrap();
        assert!(off > 0);
        assert_eq!(btf.tracepoint_args("sched_switch").unwrap(), 4);
        assert_eq!(btf.tracepoint_args("sched_wakeup").unwrap(), 1);
    }
}
