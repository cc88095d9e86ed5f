//! Boots a test bed target for `bench/verify/run.sh`: prints
//! `READY <ssh port> <private key> <user>` and keeps the target up until
//! standard input is closed, then powers it off.

use std::io::Read;

fn main() {
    let opts = image_testbed::TargetOptions::default();
    let bed = match image_testbed::Target::start(opts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot boot a test bed target: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "READY {} {} {}",
        bed.ssh_port(),
        bed.testbed().ed25519_key().display(),
        bed.user()
    );
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    bed.stop();
}
