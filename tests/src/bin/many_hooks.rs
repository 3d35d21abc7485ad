//! A phase of many hooks and a phase of few, for the log's rule: phase 1
//! has 40 no-op hooks, one that fails and one slow one (past half its
//! timeout); phase 2 has two. `main` returns at once.

macro_rules! no_op_hooks {
    ($($name:ident)*) => {
        $(
            #[lichtara::cleanup(order = 1)]
            async fn $name() {}
        )*
    };
}

no_op_hooks!(
    q00 q01 q02 q03 q04 q05 q06 q07 q08 q09 q10 q11 q12 q13 q14 q15 q16 q17 q18 q19
    q20 q21 q22 q23 q24 q25 q26 q27 q28 q29 q30 q31 q32 q33 q34 q35 q36 q37 q38 q39
);

#[lichtara::cleanup(order = 1)]
async fn fails() -> std::io::Result<()> {
    Err(std::io::Error::other("the disk is full"))
}

/// Runs 1 s of its 2 s: past half its timeout, so slow.
#[lichtara::cleanup(order = 1, timeout = "2s")]
async fn slow() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

#[lichtara::cleanup(order = 2)]
async fn after_a() {}

#[lichtara::cleanup(order = 2)]
async fn after_b() {}

#[lichtara::main]
async fn main() {}
