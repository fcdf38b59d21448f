//! The `#[export]` attribute of `grid-guest`; use it as `#[grid_guest::export]`.
//!
//! It exists because a proc-macro must live in its own crate. It only rewrites
//! syntax: the function is kept as written, and a hidden decoder and a wasm
//! export are added next to it that call into `grid_guest::__private`, where the
//! real work (CBOR, envelopes, memory) is done and tested. It must not grow
//! runtime logic of its own; the generated code must compile on every target.
//! The one decision it makes is syntactic: a parameter or result written as an
//! array of numbers (`Vec<f64>`, `&[u8]`, `Box<[i32]>`) goes through the SDK's
//! typed-array helpers, one memcpy, instead of serde's element-by-element path.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, LitStr, Pat, PathArguments, ReturnType, Token, Type};

/// See `grid_guest::export` for the documentation.
#[proc_macro_attribute]
pub fn export(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = syn::parse_macro_input!(attr as Options);
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand(options, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The attribute's arguments: nothing, or `name = "..."`.
struct Options {
    name: Option<LitStr>,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Options> {
        if input.is_empty() {
            return Ok(Options { name: None });
        }
        let key: syn::Ident = input.parse()?;
        if key != "name" {
            return Err(syn::Error::new(
                key.span(),
                "unknown option; the only option is `name = \"...\"`",
            ));
        }
        input.parse::<Token![=]>()?;
        let name: LitStr = input.parse()?;
        if name.value().is_empty() {
            return Err(syn::Error::new(
                name.span(),
                "the export name must not be empty",
            ));
        }
        input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after `name = \"...\"`"));
        }
        Ok(Options { name: Some(name) })
    }
}

/// How the function's result becomes an envelope.
enum Returns {
    /// No return type or `()`: `{"ok": null}`.
    Nothing,
    /// Written `...Result<T, E>`: `{"ok": t}` or `{"err": e}`.
    Result,
    /// Written `...Result<Vec<N>, E>` or `...Result<Box<[N]>, E>`: as `Result`,
    /// with `t` as a typed array.
    ResultArray,
    /// Written `Vec<N>` or `Box<[N]>`: `{"ok": typed array}`.
    Array,
    /// `!`: the call never returns.
    Never,
    /// Anything else: `{"ok": value}`.
    Value,
}

fn expand(options: Options, function: ItemFn) -> syn::Result<TokenStream2> {
    check_signature(&function)?;
    let ident = &function.sig.ident;
    let rust_name = ident.unraw().to_string();
    let export_name = options
        .name
        .as_ref()
        .map_or_else(|| rust_name.clone(), LitStr::value);
    let export_symbol = format!("grid:{export_name}");
    let vis = &function.vis;
    let decoder = format_ident!("__grid_export_{}", ident.unraw());

    let mut bindings = Vec::new();
    let mut arguments = Vec::new();
    for (index, input) in function.sig.inputs.iter().enumerate() {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(
                input.span(),
                "exported functions cannot take `self`",
            ));
        };
        let position = index + 1;
        let name = match &*typed.pat {
            Pat::Ident(p) => p.ident.unraw().to_string(),
            _ => String::new(),
        };
        let binding = format_ident!("__grid_argument_{}", position);
        let ty = &typed.ty;
        let Some((shape, element)) = array_parameter(ty) else {
            check_argument_type(ty)?;
            bindings.push(quote_spanned! {ty.span()=>
                let #binding: #ty = match arguments.next(#position, #name) {
                    ::core::result::Result::Ok(value) => value,
                    ::core::result::Result::Err(envelope) => return envelope,
                };
            });
            arguments.push(quote! { #binding });
            continue;
        };
        let mutable = (shape == Shape::SliceMut).then(|| quote! { mut });
        bindings.push(quote_spanned! {ty.span()=>
            let #mutable #binding: ::std::vec::Vec<#element> =
                match arguments.next_array::<#element>(#position, #name) {
                    ::core::result::Result::Ok(value) => value,
                    ::core::result::Result::Err(envelope) => return envelope,
                };
        });
        arguments.push(match shape {
            Shape::Vec => quote! { #binding },
            Shape::Box => quote! { #binding.into_boxed_slice() },
            Shape::Slice => quote! { &#binding },
            Shape::SliceMut => quote! { &mut #binding },
        });
    }
    let count = arguments.len();
    let decode = if count == 0 {
        quote! {
            if let ::core::result::Result::Err(envelope) =
                ::grid_guest::__private::Arguments::decode(arguments, 0)
            {
                return envelope;
            }
        }
    } else {
        quote! {
            let mut arguments = match ::grid_guest::__private::Arguments::decode(arguments, #count) {
                ::core::result::Result::Ok(arguments) => arguments,
                ::core::result::Result::Err(envelope) => return envelope,
            };
            #(#bindings)*
        }
    };

    let call = quote! { #ident(#(#arguments),*) };
    let output = &function.sig.output;
    // Spanned at the return type, so "`T: Serialize` is not satisfied" points there.
    let respond = match returns(output) {
        Returns::Nothing => quote! {
            #call;
            ::grid_guest::__private::ok(#rust_name, &())
        },
        Returns::Never => call,
        Returns::Value => quote_spanned! {output.span()=>
            ::grid_guest::__private::ok(#rust_name, &#call)
        },
        Returns::Result => quote_spanned! {output.span()=>
            match #call {
                ::core::result::Result::Ok(value) => ::grid_guest::__private::ok(#rust_name, &value),
                ::core::result::Result::Err(error) => ::grid_guest::__private::err(#rust_name, &error),
            }
        },
        Returns::Array => quote_spanned! {output.span()=>
            ::grid_guest::__private::ok_array(&(#call)[..])
        },
        Returns::ResultArray => quote_spanned! {output.span()=>
            match #call {
                ::core::result::Result::Ok(value) => ::grid_guest::__private::ok_array(&value[..]),
                ::core::result::Result::Err(error) => ::grid_guest::__private::err(#rust_name, &error),
            }
        },
    };

    let doc = format!(
        "The CBOR-ABI glue of `{rust_name}`: argument array in, envelope out. \
         Generated by `#[grid_guest::export]`; exported on wasm as `{export_symbol}`."
    );
    Ok(quote! {
        #function

        #[doc = #doc]
        #[doc(hidden)]
        // Native builds have no wasm export calling this, and it must not make
        // the guest's own function look unused there either.
        #[allow(dead_code)]
        #vis fn #decoder(arguments: &[u8]) -> ::std::vec::Vec<u8> {
            #decode
            #respond
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = #export_symbol)]
            extern "C" fn __grid_wasm_export(ptr: *mut u8, len: usize) -> u64 {
                // SAFETY: only the engine calls this export, with a buffer from
                // `grid_alloc` as ABI.md section 2 prescribes.
                unsafe { ::grid_guest::__private::entry(ptr, len, #decoder) }
            }
        };
    })
}

/// Refuses what the generated call cannot express, with a message at the cause.
fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let refuse = |span: Span, what: &str| {
        Err(syn::Error::new(
            span,
            format!("#[grid_guest::export] functions cannot be {what}"),
        ))
    };
    if let Some(token) = &sig.asyncness {
        return refuse(token.span, "`async`");
    }
    if let Some(token) = &sig.unsafety {
        return refuse(token.span, "`unsafe`");
    }
    if let Some(variadic) = &sig.variadic {
        return refuse(variadic.span(), "variadic");
    }
    if sig.generics.type_params().next().is_some() || sig.generics.const_params().next().is_some() {
        return refuse(
            sig.generics.span(),
            "generic: Grid calls one concrete function",
        );
    }
    Ok(())
}

fn check_argument_type(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(_) => Err(syn::Error::new(
            ty.span(),
            "exported function parameters must be owned types (`String`, not `&str`; \
             slices of numbers such as `&[f64]` are the exception): \
             arguments are decoded into fresh values",
        )),
        Type::ImplTrait(_) => Err(syn::Error::new(
            ty.span(),
            "exported function parameters cannot be `impl Trait`: Grid calls one concrete function",
        )),
        _ => Ok(()),
    }
}

fn returns(output: &ReturnType) -> Returns {
    let ReturnType::Type(_, ty) = output else {
        return Returns::Nothing;
    };
    match &**ty {
        Type::Tuple(tuple) if tuple.elems.is_empty() => Returns::Nothing,
        Type::Never(_) => Returns::Never,
        _ if owned_array(ty).is_some() => Returns::Array,
        Type::Path(path) if path.qself.is_none() && is_result(&path.path) => {
            if first_type_argument(&path.path).is_some_and(|ok| owned_array(ok).is_some()) {
                Returns::ResultArray
            } else {
                Returns::Result
            }
        }
        _ => Returns::Value,
    }
}

/// How an array-of-numbers parameter is written.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Vec,
    Box,
    Slice,
    SliceMut,
}

/// `Vec<N>`, `Box<[N]>`, `&[N]` or `&mut [N]`, N a number type: its shape and N.
fn array_parameter(ty: &Type) -> Option<(Shape, &Type)> {
    if let Type::Reference(reference) = ty {
        let Type::Slice(slice) = &*reference.elem else {
            return None;
        };
        let shape = match reference.mutability {
            Some(_) => Shape::SliceMut,
            None => Shape::Slice,
        };
        return is_number(&slice.elem).then_some((shape, &*slice.elem));
    }
    owned_array(ty)
}

/// `Vec<N>` or `Box<[N]>` (any path ending so), N a number type.
fn owned_array(ty: &Type) -> Option<(Shape, &Type)> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let argument = first_type_argument(&path.path)?;
    if path.qself.is_some() {
        return None;
    }
    if last.ident == "Vec" && is_number(argument) {
        return Some((Shape::Vec, argument));
    }
    match argument {
        Type::Slice(slice) if last.ident == "Box" && is_number(&slice.elem) => {
            Some((Shape::Box, &*slice.elem))
        }
        _ => None,
    }
}

/// The first type in the last path segment's `<...>`.
fn first_type_argument(path: &syn::Path) -> Option<&Type> {
    let PathArguments::AngleBracketed(arguments) = &path.segments.last()?.arguments else {
        return None;
    };
    arguments.args.iter().find_map(|argument| match argument {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// One of the ten element types of a typed array, written as a bare name.
fn is_number(ty: &Type) -> bool {
    const NUMBERS: [&str; 10] = [
        "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64",
    ];
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .get_ident()
            .is_some_and(|ident| NUMBERS.iter().any(|number| ident == number)),
        _ => false,
    }
}

/// `Result<T, E>`, `std::result::Result<T, E>`, `my::Result<T>`: the last path
/// segment is `Result`. Whatever the alias, its error type must be `Serialize`.
fn is_result(path: &syn::Path) -> bool {
    path.segments
        .last()
        .is_some_and(|last| last.ident == "Result" && !last.arguments.is_none())
}
