//! Checks of the annotated item that the parse alone does not make.

use quote::ToTokens;
use syn::{ItemFn, ItemStruct, Safety};

use crate::args::{Flavor, MainArgs};
use crate::ast::Attribute;
use crate::ctxt::Ctxt;

/// A hook function: a plain free `fn` or `async fn` without parameters or
/// generics.
pub(crate) fn hook_fn(cx: &Ctxt, attribute: Attribute, function: &ItemFn) {
    let sig = &function.sig;
    let hook = attribute.hook();
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(
            constness,
            format!("a {hook} cannot be a `const fn`; remove `const`"),
        );
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        cx.error_spanned_by(
            unsafety,
            format!("a {hook} cannot be an `unsafe fn`: nothing could uphold its contract when the runtime calls it; make it safe and use an `unsafe` block inside"),
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            format!("a {hook} cannot be an `extern` fn; remove the ABI"),
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format!("a {hook} cannot be generic: the runtime calls it with no type to choose; remove the generic parameters"),
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            format!("a {hook} cannot have a `where` clause; remove it"),
        );
    }
    if !sig.inputs.is_empty() {
        cx.error_spanned_by(
            &sig.inputs,
            format!(
                "a {hook} takes no parameters: the runtime has nothing to pass; reach shared state through a static, or {}",
                attribute.struct_advice()
            ),
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format!("a {hook} takes no parameters"));
    }
}

/// A resource struct: not generic, since one registration stands for the
/// type.
pub(crate) fn resource_struct(cx: &Ctxt, attribute: Attribute, item: &ItemStruct) {
    if !item.generics.params.is_empty() {
        let (path, what) = match attribute {
            Attribute::Cleanup => (attribute.path(), "one cleanup"),
            Attribute::Reload => (attribute.path(), "one reload"),
        };
        cx.error_spanned_by(
            &item.generics,
            format!(
                "a resource struct cannot be generic: `{path}` registers {what} per type; wrap each concrete type in its own struct"
            ),
        );
    } else if let Some(where_clause) = &item.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "a resource struct cannot have a `where` clause",
        );
    }
}

/// What to say when `#[tokio::main]` is on the same function.
const REPLACES_TOKIO_MAIN: &str = "`#[lichtara::main]` replaces `#[tokio::main]` (it takes the same options and runs the shutdown sequence around `main`): remove `#[tokio::main]`";

/// Whether `tokens` hold an identifier spelt `name`, at any depth.
fn has_ident(tokens: proc_macro2::TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|token| match token {
        proc_macro2::TokenTree::Ident(ident) => ident == name,
        proc_macro2::TokenTree::Group(group) => has_ident(group.stream(), name),
        _ => false,
    })
}

/// Whether `attr` is `#[tokio::main]` (or `#[::tokio::main]`).
pub(crate) fn is_tokio_main(attr: &syn::Attribute) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    segments == ["tokio", "main"]
}

/// `#[lichtara::main]` on an `async fn` without parameters.
pub(crate) fn main_fn(cx: &Ctxt, function: &ItemFn) {
    let sig = &function.sig;
    // Below `#[lichtara::main]`: the attribute is still on the function.
    if let Some(tokio_main) = function.attrs.iter().find(|attr| is_tokio_main(attr)) {
        cx.error_spanned_by(tokio_main, REPLACES_TOKIO_MAIN);
        return;
    }
    // Above it: tokio has already turned the function into a sync one
    // that builds a runtime and blocks on the body.
    if sig.asyncness.is_none() && {
        let body = function.block.to_token_stream();
        has_ident(body.clone(), "Builder") && has_ident(body, "block_on")
    } {
        cx.error_spanned_by(sig.fn_token, REPLACES_TOKIO_MAIN);
        return;
    }
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration: `#[lichtara::main] async fn main()`",
        );
    }
    if !sig.inputs.is_empty() {
        cx.error_spanned_by(
            &sig.inputs,
            "`#[lichtara::main]` takes a function without parameters",
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "`#[lichtara::main]` cannot be put on a generic function",
        );
    }
}

/// The options tokio refuses together.
pub(crate) fn main_args(cx: &Ctxt, args: &MainArgs) {
    let flavor = args
        .flavor
        .as_ref()
        .map_or(Flavor::MultiThread, |(f, _)| *f);
    if flavor == Flavor::CurrentThread {
        if let Some((_, value)) = &args.worker_threads {
            cx.error_spanned_by(
                value,
                "`worker_threads` has no effect with `flavor = \"current_thread\"`; remove one of them",
            );
        }
    }
    if flavor == Flavor::MultiThread {
        if let Some((true, value)) = &args.start_paused {
            cx.error_spanned_by(
                value,
                "`start_paused` requires `flavor = \"current_thread\"`: `#[lichtara::main(flavor = \"current_thread\", start_paused = true)]`",
            );
        }
    }
}
