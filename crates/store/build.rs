fn main() {
    // The migrations are embedded with `include_dir!`, which does not tell cargo.
    println!("cargo:rerun-if-changed=migrations");
}
