//! The gateway's modules form a DAG, in the order written once in `src/lib.rs`'s doc
//! comment (between the `module order` markers): a module may name only modules listed
//! before it. This reads every source file of the crate (following `mod` declarations from
//! `lib.rs`), and fails on each `crate::x` / `super::…` path — in `use` items, in code, in
//! macro invocations — that reaches a module listed after the one it is in. Test code
//! (`#[cfg(test)]` items and modules) is left out: tests may use anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The order from `lib.rs`: each listed module's rank.
fn order(lib: &str) -> Vec<String> {
    let begin = lib
        .find("<!-- module order: begin -->")
        .expect("lib.rs has the module order begin marker");
    let end = lib
        .find("<!-- module order: end -->")
        .expect("lib.rs has the module order end marker");
    lib[begin..end]
        .lines()
        .filter_map(|line| {
            let item = line.trim_start_matches("//!").trim().strip_prefix("- `")?;
            Some(item.split('`').next()?.to_owned())
        })
        .collect()
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

/// One use of a module: where it is, what it names.
struct Use {
    file: PathBuf,
    line: usize,
    /// The module path of the file (`["auth", "keystone"]`).
    from: Vec<String>,
    /// The absolute path named, from the crate root (`["config", "Secret"]`).
    target: Vec<String>,
}

/// Collects the crate-relative paths of one file.
struct Collector<'a> {
    file: &'a Path,
    module: &'a [String],
    uses: Vec<Use>,
}

impl Collector<'_> {
    /// Resolves a path starting with `crate`, `super` or `self` to an absolute one.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.to_vec(),
            "super" => self.module.to_vec(),
            _ => return None,
        };
        let mut rest = &segments[1..];
        if first == "super" {
            base.pop();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn record(&mut self, segments: Vec<String>, line: usize) {
        if let Some(target) = self.absolute(&segments) {
            self.uses.push(Use {
                file: self.file.to_owned(),
                line,
                from: self.module.to_vec(),
                target,
            });
        }
    }

    /// `use` trees: every leaf, with its prefix.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                full.push(n.ident.to_string());
                self.record(full, n.ident.span().start().line);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.record(full, r.ident.span().start().line);
            }
            syn::UseTree::Glob(_) => self.record(prefix.clone(), 0),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    /// `crate :: a :: b` (or `super ::`, `self ::`) runs of tokens in a macro's input.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident)
                    if ["crate", "super"].contains(&ident.to_string().as_str()) =>
                {
                    let mut segments = vec![ident.to_string()];
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (tokens.get(j), tokens.get(j + 1))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        match tokens.get(j + 2) {
                            Some(TokenTree::Ident(next)) => segments.push(next.to_string()),
                            _ => break,
                        }
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.record(segments, ident.span().start().line);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_cfg_test(attrs) {
            return;
        }
        match item {
            // Inline modules are walked with their own path; file modules by `walk`.
            syn::Item::Mod(m) if m.content.is_none() => {}
            syn::Item::Use(u) => self.use_tree(&mut Vec::new(), &u.tree),
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = path
            .segments
            .first()
            .map_or(0, |s| s.ident.span().start().line);
        self.record(segments, line);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.tokens(mac.tokens.clone());
    }
}

/// Walks the file of module `module` (path `file`) and the non-test modules it declares.
fn walk(file: &Path, module: Vec<String>, uses: &mut Vec<Use>, top: &mut Vec<String>) {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
    let mut collector = Collector {
        file,
        module: &module,
        uses: Vec::new(),
    };
    collector.visit_file(&ast);
    uses.append(&mut collector.uses);
    // Where this module's children live: `a/b.rs` and `a/b/mod.rs` → `a/b/`, `lib.rs` → `src/`.
    let dir = match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs") | Some("mod.rs") => file.parent().expect("a parent").to_owned(),
        _ => file.with_extension(""),
    };
    for item in &ast.items {
        let syn::Item::Mod(m) = item else { continue };
        if is_cfg_test(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        let mut child = module.clone();
        child.push(name.clone());
        if module.is_empty() {
            top.push(name.clone());
        }
        if m.content.is_some() {
            // An inline module: its paths were collected with the parent's (`self` and
            // `super` inside one are rare enough to be written as `crate::`).
            continue;
        }
        let flat = dir.join(format!("{name}.rs"));
        let nested = dir.join(&name).join("mod.rs");
        let path = if flat.is_file() { flat } else { nested };
        walk(&path, child, uses, top);
    }
}

#[test]
fn modules_only_use_modules_listed_before_them() {
    let lib_path = src().join("lib.rs");
    let lib = std::fs::read_to_string(&lib_path).expect("read lib.rs");
    let order = order(&lib);
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut uses = Vec::new();
    let mut top = Vec::new();
    walk(&lib_path, Vec::new(), &mut uses, &mut top);

    let mut problems = Vec::new();
    for module in &top {
        if !rank.contains_key(module.as_str()) {
            problems.push(format!(
                "module `{module}` is not in the module order of src/lib.rs"
            ));
        }
    }
    for listed in &order {
        if !top.contains(listed) {
            problems.push(format!(
                "src/lib.rs lists `{listed}`, which is not a module of the crate"
            ));
        }
    }
    for u in &uses {
        let (Some(from), Some(to)) = (u.from.first(), u.target.first()) else {
            continue;
        };
        let (Some(&from_rank), Some(&to_rank)) = (rank.get(from.as_str()), rank.get(to.as_str()))
        else {
            continue;
        };
        if to_rank > from_rank {
            problems.push(format!(
                "{}:{}: `{from}` uses `{}`, but the module order puts `{to}` after `{from}`",
                u.file.strip_prefix(src()).unwrap_or(&u.file).display(),
                u.line,
                u.target.join("::"),
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the gateway's modules must form the DAG written in src/lib.rs:\n{}",
        problems.join("\n")
    );
    // The walk saw the whole crate (a broken walk would pass vacuously).
    assert!(top.len() >= 20, "{top:?}");
    assert!(uses.len() > 200, "only {} paths seen", uses.len());
}

#[test]
fn the_check_catches_an_upward_use() {
    let file = Path::new("probe.rs");
    let module = vec!["metrics".to_owned()];
    let mut collector = Collector {
        file,
        module: &module,
        uses: Vec::new(),
    };
    let ast = syn::parse_file(
        "use crate::{body::Body, config};\n\
         fn f() { tracing::info!(x = %crate::app::NAME); super::routes::find(); }\n\
         #[cfg(test)] mod tests { use crate::dispatch::handle; }\n",
    )
    .unwrap();
    collector.visit_file(&ast);
    let targets: Vec<String> = collector.uses.iter().map(|u| u.target.join("::")).collect();
    assert_eq!(
        targets,
        ["body::Body", "config", "app::NAME", "routes::find"],
        "{targets:?}"
    );
}
