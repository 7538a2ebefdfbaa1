//! Reads a safetensors file and writes it back with deepcompress, for checking the output
//! with Python (`tests/fixtures/check_roundtrip.py`; see `docs/interop.md`).
//!
//! Usage: `cargo run -p deepcompress-core --example write_safetensors -- OUT [IN]`
//! (IN defaults to the Python-written fixture `tests/fixtures/pytorch_style.safetensors`).

use deepcompress_core::io::{read_safetensors, write_safetensors};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: write_safetensors OUT [IN]")?;
    let input = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pytorch_style.safetensors").into()
    });
    let sd = read_safetensors(&input)?;
    write_safetensors(&sd, &out)?;
    println!("read {} tensors from {input}, wrote {out}", sd.len());
    Ok(())
}
