//! Under Kubernetes, a deadline that does not fit in the pod's grace period
//! is a warning at startup.

use lichtara_tests::harness::Proc;

const FAILING: &str = env!("CARGO_BIN_EXE_failing");

#[test]
fn a_deadline_longer_than_the_grace_period_is_warned_about() {
    let too_long = Proc::start(
        FAILING,
        &[
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("LICHTARA_SHUTDOWN_TIMEOUT", "45s"),
        ],
    )
    .wait();
    assert_eq!(too_long.code(), Some(0), "{too_long}");
    assert!(
        too_long
            .stderr
            .contains("not shorter than the pod's grace period (30s)"),
        "{too_long}"
    );

    let fits = Proc::start(
        FAILING,
        &[
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("LICHTARA_SHUTDOWN_TIMEOUT", "45s"),
            ("LICHTARA_GRACE_PERIOD", "60s"),
        ],
    )
    .wait();
    assert!(!fits.stderr.contains("grace period"), "{fits}");

    let outside = Proc::start(FAILING, &[("LICHTARA_SHUTDOWN_TIMEOUT", "45s")]).wait();
    assert!(!outside.stderr.contains("grace period"), "{outside}");
}
