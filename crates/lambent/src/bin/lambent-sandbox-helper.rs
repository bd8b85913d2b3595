//! The sandbox helper as a binary of its own. lambent starts one helper per sandbox (it builds the
//! namespaces, mounts and limits, then becomes the sandbox's init), so how fast it loads bounds how
//! many sandboxes start per second: this binary is a fraction of `lambent`'s size and uses the
//! system allocator, which needs no set-up. `lambent serve` uses it when it sits next to the
//! `lambent` binary (cargo builds and installs both) and runs itself as the helper otherwise.

fn main() {
    lambent_control::helper_main()
}
