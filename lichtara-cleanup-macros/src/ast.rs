//! What the attribute was put on.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{FnArg, Item, ItemFn, ItemStruct};

use crate::ctxt::Ctxt;

/// An item a hook attribute accepts.
pub(crate) enum Target {
    Fn(ItemFn),
    Struct(ItemStruct),
}

/// Which hook attribute: the two take the same keys and the same items.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attribute {
    /// `#[lichtara::cleanup]`: runs at shutdown.
    Cleanup,
    /// `#[lichtara::reload]`: runs at SIGHUP.
    Reload,
}

impl Attribute {
    /// The attribute as written: `#[lichtara::cleanup]`.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Attribute::Cleanup => "#[lichtara::cleanup]",
            Attribute::Reload => "#[lichtara::reload]",
        }
    }

    /// What it makes: `cleanup hook`.
    pub(crate) fn hook(self) -> &'static str {
        match self {
            Attribute::Cleanup => "cleanup hook",
            Attribute::Reload => "reload hook",
        }
    }

    /// The two forms it takes, shown wherever it is put on the wrong thing.
    fn forms(self) -> &'static str {
        match self {
            Attribute::Cleanup => {
                "hooks are free functions (`#[lichtara::cleanup] async fn close() { ... }`) or resource structs (`#[lichtara::cleanup] struct Db { ... }` with `impl lichtara::Cleanup for Db`)"
            }
            Attribute::Reload => {
                "reload hooks are free functions (`#[lichtara::reload] async fn reread_config() { ... }`) or managed resource structs (`#[lichtara::cleanup] #[lichtara::reload] struct Tls { ... }` with `impl lichtara::Reload for Tls`)"
            }
        }
    }

    /// The struct form's advice for a function that takes parameters.
    pub(crate) fn struct_advice(self) -> &'static str {
        match self {
            Attribute::Cleanup => {
                "make it a resource struct (`#[lichtara::cleanup] struct ...` with `impl lichtara::Cleanup`)"
            }
            Attribute::Reload => {
                "make it a managed resource struct (`#[lichtara::cleanup] #[lichtara::reload] struct ...` with `impl lichtara::Reload`)"
            }
        }
    }
}

/// Classifies the annotated item; records an error for anything else.
pub(crate) fn hook_target(cx: &Ctxt, attribute: Attribute, item: TokenStream) -> Option<Target> {
    let (path, forms) = (attribute.path(), attribute.forms());
    let item = match syn::parse2::<Item>(item) {
        Ok(item) => item,
        Err(err) => {
            cx.syn_error(err);
            return None;
        }
    };
    let (what, tokens): (&str, TokenStream) = match item {
        Item::Fn(function) => {
            if let Some(FnArg::Receiver(receiver)) = function.sig.inputs.first() {
                cx.error_spanned_by(
                    receiver,
                    format!("`{path}` cannot be put on a method; {forms}"),
                );
                return None;
            }
            return Some(Target::Fn(function));
        }
        Item::Struct(item) => return Some(Target::Struct(item)),
        Item::Enum(item) => ("an enum", item.enum_token.to_token_stream()),
        Item::Union(item) => ("a union", item.union_token.to_token_stream()),
        Item::Trait(item) => ("a trait", item.trait_token.to_token_stream()),
        Item::TraitAlias(item) => ("a trait alias", item.trait_token.to_token_stream()),
        Item::Impl(item) => ("an impl block", item.impl_token.to_token_stream()),
        Item::Const(item) => ("a const", item.const_token.to_token_stream()),
        Item::Static(item) => ("a static", item.static_token.to_token_stream()),
        Item::Mod(item) => ("a module", item.mod_token.to_token_stream()),
        Item::Type(item) => ("a type alias", item.type_token.to_token_stream()),
        Item::Use(item) => ("a use declaration", item.use_token.to_token_stream()),
        Item::ExternCrate(item) => ("an extern crate", item.extern_token.to_token_stream()),
        Item::ForeignMod(item) => ("an extern block", item.abi.to_token_stream()),
        Item::Macro(item) => ("a macro", item.mac.path.to_token_stream()),
        other => ("this item", other.to_token_stream()),
    };
    cx.error_spanned_by(tokens, format!("`{path}` cannot be put on {what}; {forms}"));
    None
}
