//! Handles into the loaded object, shared by the loader and the readers.

use aya::Ebpf;

use super::EbpfError;

/// Program `name` of the object as its type `T`.
pub fn program<'a, T>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, EbpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    bpf.program_mut(name)
        .ok_or_else(|| EbpfError::Load(format!("no program {name}")))?
        .try_into()
        .map_err(EbpfError::load)
}
