// The schema tree is embedded into the binary (see src/schema.rs); rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=../schemas");
}
