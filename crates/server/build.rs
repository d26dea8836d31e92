fn main() {
    println!("cargo:rerun-if-changed=../../docs");
    println!("cargo:rerun-if-changed=../../clients");
}
