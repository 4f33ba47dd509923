//! The statement check (pg_query): any text, every permission set, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postgate::check::check_all;
use postgate::token::Permissions;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    for perms in ["SELECT", "SELECT,INSERT,UPDATE,DELETE", "SELECT,INSERT,UPDATE,DELETE,DDL"] {
        let p = Permissions::parse(perms).expect("valid permissions");
        // check_all runs the check on a thread with a large stack, as the server does.
        let _ = check_all(vec![sql.to_string()], p, "acme".into());
    }
});
