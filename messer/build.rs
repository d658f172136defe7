//! Builds the BPF programs of `messer-ebpf` and leaves the object in OUT_DIR,
//! from where `src/probe/ebpf` embeds it with `include_bytes_aligned!`.
//!
//! The BPF side is compiled by Debian's rustc (`rustc-web`, which ships a
//! prebuilt `core` for bpfel-unknown-none), linked into rustup as the
//! toolchain `messer-bpf` by `cargo xtask setup`. aya-ebpf needs feature gates,
//! and so does our own BPF crate (its binary is `messer`: `asm!` on BPF), so
//! RUSTC_BOOTSTRAP is opened for those two crates alone: a crate list (not
//! "1") also keeps aya-build from asking for `-Z build-std`, which needs
//! rust-src.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

const BPF_TOOLCHAIN: &str = "messer-bpf";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=MESSER_BPF_TOOLCHAIN");
    let toolchain = std::env::var("MESSER_BPF_TOOLCHAIN").unwrap_or_else(|_| BPF_TOOLCHAIN.into());
    let meta = cargo_metadata_root()?;
    let ebpf_dir = meta.join("messer-ebpf");
    // SAFETY: the build script is single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf,messer") };
    let package = Package {
        name: "messer-ebpf",
        root_dir: ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(&toolchain)).context(
        "building the BPF programs failed; run `cargo xtask setup` (Debian rustc-web, \
         libstd-rust-web-dev-bpf, bpf-linker and the `messer-bpf` rustup toolchain)",
    )
}

fn cargo_metadata_root() -> anyhow::Result<std::path::PathBuf> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    std::path::Path::new(&manifest)
        .parent()
        .map(|p| p.to_path_buf())
        .ok_or_else(|| anyhow!("{manifest} has no parent directory"))
}
