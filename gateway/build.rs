//! Rebuilds the gateway when a file is added to or removed from `static/` (rust-embed's derive
//! tracks the files it embedded, not the folder).

fn main() {
    println!("cargo:rerun-if-changed=static");
}
