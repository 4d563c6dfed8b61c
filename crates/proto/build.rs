//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and
//! generates prost messages plus tonic clients and servers. The encoded
//! descriptor set is written next to the code, for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTO_ROOT: &str = "../../proto";
const FILES: &[&str] = &["ferroshop/orders/v1/orders.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(FILES, [PROTO_ROOT])?;
    std::fs::write(
        out_dir.join("ferroshop_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }
    Ok(())
}
