//! Records the git commit the binary is built from (for datasets' provenance), when built
//! from a git checkout.

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    if let Ok(out) = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
    {
        if out.status.success() {
            println!(
                "cargo:rustc-env=LIENTHONG_GIT_COMMIT={}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
    }
}
