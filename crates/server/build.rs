fn main() {
    // `include_dir!` embeds docs/ (the knowledge base's own pages) without telling cargo; the
    // client scripts are embedded with `include_str!`, which cargo tracks file by file, so
    // build outputs written beside them (`pip install ./clients/python`, `__pycache__`) cause
    // no rebuild.
    println!("cargo:rerun-if-changed=../../docs");
}
