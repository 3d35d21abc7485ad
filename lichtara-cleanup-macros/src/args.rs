//! The attributes' arguments: `order = 2, timeout = "5s", …`.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::Parser;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, Path, UnOp};

use crate::ctxt::Ctxt;
use crate::timeout::{self, Refused};

/// A key that may be given once; the duplicate error points at the second.
pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    attribute: &'static str,
    key: &'static str,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    fn none(cx: &'c Ctxt, attribute: &'static str, key: &'static str) -> Self {
        Self {
            cx,
            attribute,
            key,
            value: None,
        }
    }

    fn set(&mut self, at: &Path, value: Option<T>) {
        if self.value.is_some() {
            self.cx.error_spanned_by(
                at,
                format!(
                    "duplicate `{}` in `{}`; give it once",
                    self.key, self.attribute
                ),
            );
        } else {
            self.value = value;
        }
    }

    fn get(self) -> Option<T> {
        self.value
    }
}

/// A duration given as a string literal, checked at compile time.
#[derive(Clone)]
pub(crate) struct Timeout {
    pub(crate) duration: Duration,
    pub(crate) literal: LitStr,
}

/// A `crate = "path"` value.
pub(crate) struct CratePath {
    pub(crate) path: Path,
}

/// `#[lichtara::cleanup(...)]` and `#[lichtara::reload(...)]`.
pub(crate) struct CleanupArgs {
    pub(crate) order: Option<i32>,
    pub(crate) timeout: Option<Timeout>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<CratePath>,
}

/// The runtime flavor of `#[lichtara::main]`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
}

/// `#[lichtara::main(...)]`.
pub(crate) struct MainArgs {
    pub(crate) flavor: Option<(Flavor, LitStr)>,
    pub(crate) worker_threads: Option<(usize, Expr)>,
    pub(crate) start_paused: Option<(bool, Expr)>,
    pub(crate) timeout: Option<Timeout>,
    pub(crate) main_timeout: Option<Timeout>,
    pub(crate) tasks_timeout: Option<Timeout>,
    pub(crate) krate: Option<CratePath>,
}

const MAIN: &str = "#[lichtara::main]";
const CLEANUP_KEYS: &[&str] = &["order", "timeout", "name", "crate"];
const MAIN_KEYS: &[&str] = &[
    "flavor",
    "worker_threads",
    "start_paused",
    "timeout",
    "main_timeout",
    "tasks_timeout",
    "crate",
];

/// Words people reach for that mean one of our keys.
const SYNONYMS: &[(&str, &str)] = &[
    ("priority", "order"),
    ("phase", "order"),
    ("stage", "order"),
    ("deadline", "timeout"),
    ("grace", "timeout"),
    ("label", "name"),
    ("threads", "worker_threads"),
    ("paused", "start_paused"),
];

/// The keys of a hook attribute, `#[lichtara::cleanup]` or
/// `#[lichtara::reload]` (`attribute`): the same for both.
pub(crate) fn parse_hook(cx: &Ctxt, attribute: &'static str, tokens: TokenStream) -> CleanupArgs {
    let mut order = Attr::none(cx, attribute, "order");
    let mut timeout = Attr::none(cx, attribute, "timeout");
    let mut name = Attr::none(cx, attribute, "name");
    let mut krate = Attr::none(cx, attribute, "crate");
    let parser = syn::meta::parser(|meta| {
        let key = &meta.path;
        let Some(value) = key_value(cx, attribute, CLEANUP_KEYS, &meta)? else {
            return Ok(());
        };
        if key.is_ident("order") {
            order.set(key, parse_order(cx, &value));
        } else if key.is_ident("timeout") {
            timeout.set(key, parse_timeout(cx, "timeout", &value));
        } else if key.is_ident("name") {
            name.set(key, parse_name(cx, &value));
        } else if key.is_ident("crate") {
            krate.set(key, parse_crate(cx, &value));
        }
        Ok(())
    });
    if let Err(err) = parser.parse2(tokens) {
        cx.syn_error(err);
    }
    CleanupArgs {
        order: order.get(),
        timeout: timeout.get(),
        name: name.get(),
        krate: krate.get(),
    }
}

pub(crate) fn parse_main(cx: &Ctxt, tokens: TokenStream) -> MainArgs {
    let mut flavor = Attr::none(cx, MAIN, "flavor");
    let mut worker_threads = Attr::none(cx, MAIN, "worker_threads");
    let mut start_paused = Attr::none(cx, MAIN, "start_paused");
    let mut timeout = Attr::none(cx, MAIN, "timeout");
    let mut main_timeout = Attr::none(cx, MAIN, "main_timeout");
    let mut tasks_timeout = Attr::none(cx, MAIN, "tasks_timeout");
    let mut krate = Attr::none(cx, MAIN, "crate");
    let parser = syn::meta::parser(|meta| {
        let key = &meta.path;
        let Some(value) = key_value(cx, MAIN, MAIN_KEYS, &meta)? else {
            return Ok(());
        };
        if key.is_ident("flavor") {
            flavor.set(key, parse_flavor(cx, &value));
        } else if key.is_ident("worker_threads") {
            worker_threads.set(key, parse_worker_threads(cx, &value));
        } else if key.is_ident("start_paused") {
            start_paused.set(key, parse_bool(cx, "start_paused", &value));
        } else if key.is_ident("timeout") {
            timeout.set(key, parse_timeout(cx, "timeout", &value));
        } else if key.is_ident("main_timeout") {
            main_timeout.set(key, parse_timeout(cx, "main_timeout", &value));
        } else if key.is_ident("tasks_timeout") {
            tasks_timeout.set(key, parse_timeout(cx, "tasks_timeout", &value));
        } else if key.is_ident("crate") {
            krate.set(key, parse_crate(cx, &value));
        }
        Ok(())
    });
    if let Err(err) = parser.parse2(tokens) {
        cx.syn_error(err);
    }
    let (timeout, main_timeout, tasks_timeout) =
        (timeout.get(), main_timeout.get(), tasks_timeout.get());
    if let Some(deadline) = &timeout {
        for (key, wind_down, who) in [
            ("main_timeout", &main_timeout, "main leaves"),
            ("tasks_timeout", &tasks_timeout, "the tasks leave"),
        ] {
            let Some(wind_down) = wind_down else { continue };
            if wind_down.duration >= deadline.duration {
                cx.error_spanned_by(
                    &wind_down.literal,
                    format!(
                        "`{key} = {:?}` must be shorter than `timeout = {:?}`: the hooks run in the time {who}",
                        wind_down.literal.value(),
                        deadline.literal.value()
                    ),
                );
            }
        }
    }
    MainArgs {
        flavor: flavor.get(),
        worker_threads: worker_threads.get(),
        start_paused: start_paused.get(),
        timeout,
        main_timeout,
        tasks_timeout,
        krate: krate.get(),
    }
}

/// A value as written, out of the invisible group a `macro_rules!`
/// fragment (`$order:literal`, `$t:expr`) arrives in.
fn ungroup(value: Expr) -> Expr {
    match value {
        Expr::Group(group) => ungroup(*group.expr),
        value => value,
    }
}

/// [`ungroup`] by reference: the operand of `-$order`.
fn peel(value: &Expr) -> &Expr {
    match value {
        Expr::Group(group) => peel(&group.expr),
        value => value,
    }
}

/// Reads `key = value`. Records an error and returns `None` for an unknown
/// key or a key without a value, consuming what follows it so that the
/// remaining keys are still checked.
fn key_value(
    cx: &Ctxt,
    attribute: &str,
    keys: &[&str],
    meta: &syn::meta::ParseNestedMeta<'_>,
) -> syn::Result<Option<Expr>> {
    let key = &meta.path;
    let known = keys.iter().find(|k| key.is_ident(k));
    let has_value = meta.input.peek(syn::Token![=]);
    let value = if has_value {
        Some(ungroup(meta.value()?.parse::<Expr>()?))
    } else {
        if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
            // `key(…)` or other stray tokens: skip one token tree.
            meta.input.parse::<proc_macro2::TokenTree>()?;
        }
        None
    };
    match (known, value) {
        (None, _) => {
            cx.error_spanned_by(key, unknown_key_message(attribute, keys, key));
            Ok(None)
        }
        (Some(known), None) => {
            cx.error_spanned_by(
                key,
                format!(
                    "`{known}` in `{attribute}` needs a value: {}",
                    example(known)
                ),
            );
            Ok(None)
        }
        (Some(_), Some(value)) => Ok(Some(value)),
    }
}

fn example(key: &str) -> &'static str {
    match key {
        "order" => "`order = 2`",
        "timeout" => "`timeout = \"5s\"`",
        "name" => "`name = \"flush metrics\"`",
        "crate" => "`crate = \"my_lichtara\"`",
        "flavor" => "`flavor = \"current_thread\"`",
        "worker_threads" => "`worker_threads = 4`",
        "start_paused" => "`start_paused = true`",
        _ => "`key = value`",
    }
}

fn unknown_key_message(attribute: &str, keys: &[&str], key: &Path) -> String {
    let written = key.to_token_stream().to_string().replace(' ', "");
    let expected = keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut message =
        format!("unknown key `{written}` in `{attribute}`; expected one of: {expected}");
    if let Some(hint) = suggestion(&written, keys) {
        message.push_str(&format!("; did you mean `{hint}`?"));
    } else if attribute == MAIN && written == "unhandled_panic" {
        message
            .push_str("; lichtara reports a panic in `main` with exit code 101 and runs the hooks");
    }
    message
}

/// The key `written` most likely meant: a synonym, or a near miss.
fn suggestion<'k>(written: &str, keys: &[&'k str]) -> Option<&'k str> {
    let lower = written.to_ascii_lowercase();
    if let Some((_, key)) = SYNONYMS.iter().find(|(synonym, _)| *synonym == lower) {
        return keys.iter().copied().find(|k| k == key);
    }
    keys.iter()
        .copied()
        .map(|k| (edit_distance(&lower, k), k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance, for did-you-mean hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn string_literal(value: &Expr) -> Option<&LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        _ => None,
    }
}

fn parse_order(cx: &Ctxt, value: &Expr) -> Option<i32> {
    let (negative, lit) = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match peel(expr) {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => (true, lit),
            _ => return order_not_integer(cx, value),
        },
        _ => return order_not_integer(cx, value),
    };
    let magnitude = match lit.base10_parse::<u64>() {
        Ok(magnitude) => i64::try_from(magnitude).ok(),
        Err(_) => None,
    };
    let order = magnitude.map(|m| if negative { -m } else { m });
    match order.and_then(|order| i32::try_from(order).ok()) {
        Some(order) => Some(order),
        None => {
            cx.error_spanned_by(
                value,
                format!(
                    "`order` must fit in an i32 ({} to {}); lower orders run first, so small numbers such as 1, 2, 3 are enough",
                    i32::MIN,
                    i32::MAX
                ),
            );
            None
        }
    }
}

fn order_not_integer(cx: &Ctxt, value: &Expr) -> Option<i32> {
    let message = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => match lit.value().trim().parse::<i32>() {
            Ok(order) => {
                format!("`order` must be an integer, not a string: write `order = {order}`")
            }
            Err(_) => "`order` must be an integer, not a string: `order = 2`".to_owned(),
        },
        Expr::Lit(ExprLit {
            lit: Lit::Float(_), ..
        }) => "`order` must be a whole number such as `order = 2`".to_owned(),
        _ => "`order` must be an integer literal such as `order = 2` or `order = -1`".to_owned(),
    };
    cx.error_spanned_by(value, message);
    None
}

fn parse_timeout(cx: &Ctxt, key: &str, value: &Expr) -> Option<Timeout> {
    let Some(literal) = string_literal(value) else {
        let hint = match value {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => {
                format!("; write the unit: `{key} = \"{}s\"`", lit.base10_digits())
            }
            _ => format!(": `{key} = \"5s\"`"),
        };
        cx.error_spanned_by(value, format!("`{key}` must be a string with a unit{hint}"));
        return None;
    };
    let text = literal.value();
    let message = match timeout::parse(&text) {
        Ok(duration) => {
            return Some(Timeout {
                duration,
                literal: literal.clone(),
            });
        }
        Err(Refused::NotADuration(err)) => format!(
            "`{key} = {text:?}` is not a duration ({err}); write it like \"250ms\", \"5s\" or \"1m 30s\""
        ),
        Err(Refused::Zero) => {
            format!("`{key}` must be greater than zero; leave `{key}` out to have none")
        }
        Err(Refused::TooLong) => format!(
            "`{key} = {text:?}` is longer than 1 hour; no orchestrator waits that long for a shutdown, so this is almost certainly a mistake"
        ),
    };
    cx.error_spanned_by(literal, message);
    None
}

fn parse_name(cx: &Ctxt, value: &Expr) -> Option<LitStr> {
    match string_literal(value) {
        Some(lit) if !lit.value().trim().is_empty() => Some(lit.clone()),
        Some(lit) => {
            cx.error_spanned_by(lit, "`name` must not be empty");
            None
        }
        None => {
            cx.error_spanned_by(value, "`name` must be a string: `name = \"flush metrics\"`");
            None
        }
    }
}

fn parse_crate(cx: &Ctxt, value: &Expr) -> Option<CratePath> {
    let Some(lit) = string_literal(value) else {
        cx.error_spanned_by(
            value,
            "`crate` must be a string holding a path: `crate = \"my_lichtara\"`",
        );
        return None;
    };
    match lit.parse::<Path>() {
        Ok(path) => Some(CratePath { path }),
        Err(_) => {
            cx.error_spanned_by(
                lit,
                format!(
                    "`crate = {:?}` is not a path; name the crate as your Cargo.toml renames it: `crate = \"my_lichtara\"`",
                    lit.value()
                ),
            );
            None
        }
    }
}

fn parse_flavor(cx: &Ctxt, value: &Expr) -> Option<(Flavor, LitStr)> {
    let Some(lit) = string_literal(value) else {
        cx.error_spanned_by(value, "`flavor` must be a string: `flavor = \"current_thread\"` or `flavor = \"multi_thread\"`");
        return None;
    };
    match lit.value().as_str() {
        "current_thread" => Some((Flavor::CurrentThread, lit.clone())),
        "multi_thread" => Some((Flavor::MultiThread, lit.clone())),
        other => {
            cx.error_spanned_by(
                lit,
                format!(
                    "unknown `flavor = {other:?}`; expected \"current_thread\" or \"multi_thread\""
                ),
            );
            None
        }
    }
}

fn parse_worker_threads(cx: &Ctxt, value: &Expr) -> Option<(usize, Expr)> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(lit), ..
    }) = value
    {
        match lit.base10_parse::<usize>() {
            Ok(0) => cx.error_spanned_by(value, "`worker_threads` must be at least 1"),
            Ok(n) => return Some((n, value.clone())),
            Err(_) => cx.error_spanned_by(value, "`worker_threads` is too large"),
        }
        return None;
    }
    cx.error_spanned_by(
        value,
        "`worker_threads` must be an integer literal: `worker_threads = 4`",
    );
    None
}

fn parse_bool(cx: &Ctxt, key: &str, value: &Expr) -> Option<(bool, Expr)> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Bool(lit),
        ..
    }) = value
    {
        return Some((lit.value(), value.clone()));
    }
    cx.error_spanned_by(value, format!("`{key}` must be `true` or `false`"));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_and_synonyms() {
        assert_eq!(suggestion("ordre", CLEANUP_KEYS), Some("order"));
        assert_eq!(suggestion("timout", CLEANUP_KEYS), Some("timeout"));
        assert_eq!(suggestion("priority", CLEANUP_KEYS), Some("order"));
        assert_eq!(suggestion("Timeout", CLEANUP_KEYS), Some("timeout"));
        assert_eq!(
            suggestion("worker_thread", MAIN_KEYS),
            Some("worker_threads")
        );
        assert_eq!(suggestion("colour", CLEANUP_KEYS), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("order", "order"), 0);
        assert_eq!(edit_distance("ordre", "order"), 2);
        assert_eq!(edit_distance("timout", "timeout"), 1);
    }
}
