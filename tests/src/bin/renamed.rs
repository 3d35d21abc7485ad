//! Runs a `main` written against lichtara-cleanup renamed to `cleanup_rt`.

fn main() {
    lichtara_fixture_hooklib::renamed_main().expect("renamed main");
}
