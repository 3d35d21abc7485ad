//! Code generation: registrations through `inventory` and the `main` entry.
//! Everything generated reaches the runtime through
//! `<crate>::__private`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, ItemFn, ItemStruct, ReturnType, Stmt};

use crate::args::{self, CleanupArgs, Flavor, MainArgs};
use crate::ast::{self, Attribute, Target};
use crate::ctxt::Ctxt;
use crate::{fallback, valid};

pub(crate) fn cleanup(args: TokenStream, item: TokenStream) -> TokenStream {
    hook(Attribute::Cleanup, args, item)
}

pub(crate) fn reload(args: TokenStream, item: TokenStream) -> TokenStream {
    hook(Attribute::Reload, args, item)
}

/// `#[lichtara::cleanup]` or `#[lichtara::reload]`: the same checks, a
/// registration of its own kind.
fn hook(attribute: Attribute, args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::default();
    let args = args::parse_hook(&cx, attribute.path(), args);
    let target = ast::hook_target(&cx, attribute, item.clone());
    match &target {
        Some(Target::Fn(function)) => valid::hook_fn(&cx, attribute, function),
        Some(Target::Struct(item)) => valid::resource_struct(&cx, attribute, item),
        None => {}
    }
    if let Err(err) = cx.check() {
        return fallback::item_with_error(item, err);
    }
    match (target, attribute) {
        (Some(Target::Fn(function)), _) => hook_fn(attribute, &args, &function),
        (Some(Target::Struct(item)), Attribute::Cleanup) => resource_struct(&args, &item),
        (Some(Target::Struct(item)), Attribute::Reload) => reload_struct(&args, &item),
        (None, _) => item,
    }
}

fn runtime_path(krate: Option<&args::CratePath>) -> TokenStream {
    match krate {
        Some(krate) => krate.path.to_token_stream(),
        None => quote!(::lichtara),
    }
}

/// The registration's constant arguments: name, order, timeout, source.
fn registration_head(args: &CleanupArgs, ident: &syn::Ident) -> TokenStream {
    let name = match &args.name {
        Some(name) => name.to_token_stream(),
        None => quote!(::core::concat!(
            ::core::module_path!(),
            "::",
            ::core::stringify!(#ident)
        )),
    };
    let order = args.order.unwrap_or(0);
    // The parser bounds a timeout to an hour: its nanoseconds fit a u64.
    let timeout = match &args.timeout {
        Some(timeout) => {
            let nanos = u64::try_from(timeout.duration.as_nanos()).unwrap_or(u64::MAX);
            quote!(::core::option::Option::Some(::core::time::Duration::from_nanos(#nanos)))
        }
        None => quote!(::core::option::Option::None),
    };
    let span = ident.span();
    let file = quote_spanned!(span=> ::core::file!());
    let line = quote_spanned!(span=> ::core::line!());
    quote!(#name, #order, #timeout, #file, #line)
}

fn hook_fn(attribute: Attribute, args: &CleanupArgs, function: &ItemFn) -> TokenStream {
    let krate = runtime_path(args.krate.as_ref());
    // Each attribute has its registration, and its own door (whose
    // refusal names the attribute).
    let (registration, kind_enum, free) = match attribute {
        Attribute::Cleanup => (
            quote!(Registration),
            quote!(RegisteredKind),
            quote!(free_hook),
        ),
        Attribute::Reload => (
            quote!(ReloadRegistration),
            quote!(ReloadKind),
            quote!(free_reload_hook),
        ),
    };
    let ident = &function.sig.ident;
    let head = registration_head(args, ident);
    // Errors about the return type land on the return type.
    let output_span = match &function.sig.output {
        ReturnType::Default => ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    // The hook is called through `free_hook`, which accepts only a function:
    // see the probe below for why. Every token of the call has the name's
    // span, so that a refusal is reported once, there.
    let call = quote_spanned!(ident.span()=> __lichtara_free_hook(#ident));
    // The call is bound first so that a wrong return type is reported on
    // the return type alone. The binding and its use share the return
    // type's span, hygiene included: a hook written by a `macro_rules!`
    // hands over tokens of that macro's context, and a name bound in
    // another context would not be found.
    let bound = proc_macro2::Ident::new("__lichtara_bound", output_span);
    let used = &bound;
    let (runner, kind) = if function.sig.asyncness.is_some() {
        let box_hook = quote_spanned!(output_span=> #krate::hook::box_hook);
        let boxed = quote_spanned!(output_span=> #box_hook(#used));
        (
            quote! {
                fn __lichtara_run() -> #krate::hook::HookFuture {
                    let #bound = #call;
                    #boxed
                }
            },
            quote!(Async),
        )
    } else {
        let hook_result = quote_spanned!(output_span=> #krate::hook::hook_result);
        let converted = quote_spanned!(output_span=> #hook_result(#used));
        (
            quote! {
                fn __lichtara_run() -> ::core::result::Result<(), #krate::__private::BoxError> {
                    let #bound = #call;
                    #converted
                }
            },
            quote!(Blocking),
        )
    };
    // The registration goes inside the hook's own body, the one place
    // where items are valid wherever the attribute was put (a module, an
    // `impl`, a trait impl, a block): the attribute cannot see where that
    // was, and must fail with its own message rather than rustc's.
    let registration = quote! {
        const _: () = {
            // Finds the hook as an item of the module. Inside an `impl` (or
            // another function's body) it is not one: the glob's unit
            // struct of the same name is found instead, and `free_hook`
            // refuses it with a message that says what to do. (A free
            // function of the same name beside the `impl` would be found
            // first: it is what gets registered.) The glob of the module
            // costs rustc time in the number of the module's items: fine
            // for hundreds of hooks in one module; the S1 benchmark's
            // 10,000 are spread over 100 modules.
            // Named for rustc's help line: "`FnOnce()` is not implemented
            // for `not_a_module_item::close`". Private to this block.
            #[allow(dead_code, non_camel_case_types)]
            mod not_a_module_item {
                pub(super) struct #ident;
            }
            #[allow(unused_imports)]
            use not_a_module_item::*;
            {
                #[allow(unused_imports)]
                use self::*;
                use #krate::hook::#free as __lichtara_free_hook;

                #runner

                #krate::__private::inventory::submit! {
                    #krate::__private::#registration::new(
                        #head,
                        #krate::__private::#kind_enum::#kind(__lichtara_run),
                    )
                }
            }
        };
    };
    let mut function = function.clone();
    function
        .block
        .stmts
        .insert(0, Stmt::Item(Item::Verbatim(registration)));
    function.into_token_stream()
}

fn resource_struct(args: &CleanupArgs, item: &ItemStruct) -> TokenStream {
    let krate = runtime_path(args.krate.as_ref());
    let ident = &item.ident;
    let head = registration_head(args, ident);
    // Spanned on the struct's name: a missing `Cleanup` impl is reported
    // there.
    let resource_impl = quote_spanned! {ident.span()=>
        impl #krate::hook::Resource for #ident {
            fn instances() -> &'static #krate::__private::Instances<Self> {
                static __LICHTARA_INSTANCES: #krate::__private::Instances<#ident> =
                    #krate::__private::Instances::new();
                &__LICHTARA_INSTANCES
            }
        }
    };
    quote! {
        #item

        #[doc(hidden)]
        const _: () = {
            #resource_impl

            #krate::__private::inventory::submit! {
                #krate::__private::Registration::new(
                    #head,
                    #krate::__private::RegisteredKind::Resource(
                        #krate::__private::resource_hook::<#ident>,
                    ),
                )
            }
        };
    }
}

/// A managed resource type's reload: it reloads the instances handed to
/// `lichtara::manage`, so the type must be a resource (`#[lichtara::cleanup]`)
/// as well as implement `Reload`; both are checked on the struct's name.
fn reload_struct(args: &CleanupArgs, item: &ItemStruct) -> TokenStream {
    let krate = runtime_path(args.krate.as_ref());
    let ident = &item.ident;
    let head = registration_head(args, ident);
    let reload_impl = quote_spanned! {ident.span()=>
        impl #krate::hook::ReloadResource for #ident {}
    };
    quote! {
        #item

        #[doc(hidden)]
        const _: () = {
            #reload_impl

            #krate::__private::inventory::submit! {
                #krate::__private::ReloadRegistration::new(
                    #head,
                    #krate::__private::ReloadKind::Resource(
                        #krate::__private::reload_resource_hook::<#ident>,
                    ),
                )
            }
        };
    }
}

pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::default();
    let args = args::parse_main(&cx, args);
    valid::main_args(&cx, &args);
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(err) => {
            cx.syn_error(err);
            let err = cx.check().expect_err("an error was recorded");
            return fallback::item_with_error(item, err);
        }
    };
    valid::main_fn(&cx, &function);
    match cx.check() {
        Ok(()) => main_fn(&args, function),
        Err(err) => fallback::main_with_error(&args, function, err),
    }
}

/// Expands `#[lichtara::main]`; also the best-effort expansion when the
/// attribute had errors.
pub(crate) fn main_fn(args: &MainArgs, mut function: ItemFn) -> TokenStream {
    let krate = runtime_path(args.krate.as_ref());
    function.sig.asyncness = None;
    let body = &function.block;
    let output = match &function.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let flavor = args
        .flavor
        .as_ref()
        .map_or(Flavor::MultiThread, |(f, _)| *f);
    let builder = match flavor {
        Flavor::CurrentThread => quote!(new_current_thread),
        Flavor::MultiThread => quote!(new_multi_thread),
    };
    let worker_threads = args
        .worker_threads
        .as_ref()
        .map(|(n, _)| quote!(__lichtara_builder.worker_threads(#n);));
    let start_paused = match &args.start_paused {
        Some((true, value)) => {
            Some(quote_spanned!(value.span()=> __lichtara_builder.start_paused(true);))
        }
        _ => None,
    };
    let duration = |timeout: &Option<crate::args::Timeout>| match timeout {
        Some(timeout) => {
            let nanos = u64::try_from(timeout.duration.as_nanos()).unwrap_or(u64::MAX);
            let span = timeout.literal.span();
            quote_spanned!(span=> ::core::option::Option::Some(::core::time::Duration::from_nanos(#nanos)))
        }
        None => quote!(::core::option::Option::None),
    };
    let (timeout, main_timeout, tasks_timeout) = (
        duration(&args.timeout),
        duration(&args.main_timeout),
        duration(&args.tasks_timeout),
    );
    let last_span = body.brace_token.span.close();
    let call = quote_spanned! {last_span=>
        #[allow(clippy::needless_return, clippy::diverging_sub_expression)]
        {
            return #krate::__private::run_main::<_, #output>(
                #krate::__private::MainConfig {
                    timeout: #timeout,
                    main_timeout: #main_timeout,
                    tasks_timeout: #tasks_timeout,
                },
                __lichtara_builder,
                __lichtara_body,
            );
        }
    };
    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    // Says, before any constructor runs (`.preinit_array` runs first on
    // ELF systems, whatever order the link gave the others), that `main`
    // lists the hooks itself: the listing at load time, which may come
    // before some hooks are registered (fat LTO reorders constructors), is
    // not needed. Only in a binary target (cargo sets `CARGO_BIN_NAME`):
    // the `#[used]` static would mark any program that links a library
    // with an unused `#[lichtara::main]` function.
    // And only on `main` itself: on another function (which `main` may
    // or may not call) the load-time listing is still needed.
    let is_main = function.sig.ident == "main";
    let entry_marker = std::env::var_os("CARGO_BIN_NAME")
        .filter(|_| is_main)
        .map(|_| {
            quote! {
                // Not in the bin's unit-test build: its harness, not this
                // `main`, runs, and no supervisor would take a signal.
                #[cfg(not(test))]
                #[cfg(any(
                    target_os = "linux",
                    target_os = "android",
                    target_os = "freebsd",
                    target_os = "netbsd",
                    target_os = "openbsd",
                    target_os = "dragonfly",
                ))]
                #[used]
                #[unsafe(link_section = ".preinit_array")]
                static __LICHTARA_MAIN_ENTRY: extern "C" fn() = #krate::__private::main_entry;
            }
        });
    quote! {
        #(#attrs)*
        #vis #sig {
            #entry_marker
            let __lichtara_body = async move #body;
            let mut __lichtara_builder = #krate::__private::tokio::runtime::Builder::#builder();
            #worker_threads
            #start_paused
            #call
        }
    }
}
