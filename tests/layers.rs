//! The library's modules import only downward. Each top-level module of
//! `src/` has a layer (the table below, also drawn in `src/lib.rs` and
//! `docs/ARCHITECTURE.md`); a module may name `crate::m` only for an `m` in
//! its own layer or a lower one. The binary (`src/main.rs`, `src/cli/`) sits
//! above everything and reaches the library as `shiftlm::…`.
//!
//! The check reads the sources, so it also covers test modules and paths
//! written out in full (`crate::model::ModelConfig::Gpt2(..)`), not only `use`
//! lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom first. Modules on one line share a layer and must not import each
/// other in a cycle (checked below as well).
const LAYERS: &[&[&str]] = &[
    &["error", "rng", "io", "faults", "chart", "limits", "profile", "progress", "stats", "dist"],
    &["ops"],
    &["nn"],
    &["optim"],
    &["data"],
    &["model"],
    &["decode"],
    &["eval"],
    &["config"],
    &["checkpoint"],
    &["train"],
    &["plot"],
    &["bench"],
    &["api"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every top-level module the source names: `crate::name`, inside
/// `use crate::{a, b::{c, d}}` groups (nested ones too), and `super::name`
/// where the `super`s climb to the crate root from a file `depth` modules
/// down (1 for `src/io.rs` or `src/data/mod.rs`, 2 for `src/data/shift.rs`).
fn crate_refs(src: &str, depth: usize) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut refs = Vec::new();
    let push_group = |rest: &str, refs: &mut Vec<String>| {
        // The names at the top level of a `{…}` group.
        let (mut level, mut at_start) = (0usize, true);
        for (i, c) in rest.char_indices() {
            match c {
                '{' => level += 1,
                '}' if level == 0 => break,
                '}' => level -= 1,
                ',' if level == 0 => at_start = true,
                c if at_start && !c.is_whitespace() => {
                    at_start = false;
                    let name = ident(&rest[i..]);
                    if !name.is_empty() && name != "self" {
                        refs.push(name);
                    }
                }
                _ => {}
            }
        }
    };
    for (i, _) in src.match_indices("crate::") {
        if src[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue; // e.g. `shiftlm_crate::`
        }
        let rest = &src[i + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => push_group(group, &mut refs),
            None => refs.push(ident(rest)),
        }
    }
    let inline = inline_modules(src);
    for (i, _) in src.match_indices("super::") {
        if src[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue; // inside a chain of supers, counted from its first
        }
        let supers = (0..).take_while(|k| src[i + 7 * k..].starts_with("super::")).count();
        // An inline `mod tests { … }` is one more level down.
        let levels = depth + inline.iter().filter(|r| r.contains(&i)).count();
        if supers != levels {
            continue; // stays inside the crate's modules (or is not a valid path)
        }
        let rest = &src[i + 7 * supers..];
        match rest.strip_prefix('{') {
            Some(group) => push_group(group, &mut refs),
            None => refs.push(ident(rest)),
        }
    }
    refs.retain(|r| !r.is_empty());
    refs
}

/// The spans of inline modules (`mod tests { … }`), by brace matching.
fn inline_modules(src: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = src[from..].find("mod ") {
        let start = from + at;
        from = start + 4;
        let head: String = src[from..].chars().take_while(|c| *c != ';' && *c != '{').collect();
        if !head.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || src[from + head.len()..].starts_with(';')
        {
            continue; // `mod x;` (a file of its own), or not a module at all
        }
        let open = from + head.len();
        let mut level = 0;
        for (k, c) in src[open..].char_indices() {
            match c {
                '{' => level += 1,
                '}' => {
                    level -= 1;
                    if level == 0 {
                        spans.push(start..open + k);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    spans
}

#[test]
fn library_modules_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut problems = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs").to_string();
        if top == "main" || top == "cli" || top == "lib" {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            problems.push(format!("src/{}: module '{top}' has no layer in tests/layers.rs", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        // Modules below the crate root: `src/io.rs` is one, `src/data/shift.rs` two.
        let depth = rel.components().count() - usize::from(rel.ends_with("mod.rs"));
        for name in crate_refs(&text, depth) {
            if name == top || name == "Result" || name == "Error" {
                continue; // the crate-root re-exports of error::{Error, Result}
            }
            match layer_of(&name) {
                None => problems.push(format!("src/{}: crate::{name} is not a layered module", rel.display())),
                Some(l) if l > own => problems.push(format!(
                    "src/{}: '{top}' (layer {own}) imports '{name}' (layer {l}), which is above it",
                    rel.display()
                )),
                Some(_) => {
                    edges.entry((top.clone(), name)).or_insert_with(|| rel.to_path_buf());
                }
            }
        }
    }
    // Modules sharing a layer: no two may import each other.
    for ((a, b), file) in &edges {
        if let Some(back) = edges.get(&(b.clone(), a.clone())) {
            if a < b {
                problems.push(format!(
                    "'{a}' and '{b}' import each other (src/{}, src/{})",
                    file.display(),
                    back.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "upward or cyclic imports:\n  {}", problems.join("\n  "));
}

/// The binary's own crates: optional dependencies behind the `cli` feature.
const CLI_ONLY: &[&str] = &["anyhow", "clap", "indicatif", "mimalloc", "libmimalloc-sys", "tracing-subscriber"];

#[test]
fn cli_only_crates_are_optional_and_unused_by_the_library() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
    let deps = manifest["dependencies"].as_table().unwrap();
    for name in CLI_ONLY {
        let optional = deps.get(*name).and_then(|d| d.get("optional")).and_then(|o| o.as_bool()) == Some(true);
        assert!(optional, "{name} must be an optional dependency (feature \"cli\"), not the library's");
    }
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for f in files {
        let rel = f.strip_prefix(root).unwrap();
        if rel.starts_with("src/cli") || rel == Path::new("src/main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for name in CLI_ONLY {
            let path = format!("{}::", name.replace('-', "_"));
            let used = text
                .match_indices(&path)
                .any(|(i, _)| !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            assert!(!used, "{}: the library uses {name}, which only the binary may", rel.display());
        }
    }
}

#[test]
fn fault_hooks_are_only_in_test_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
    let features = manifest["features"].as_table().unwrap();
    assert!(features.contains_key("fault-injection"));
    let default = features["default"].as_array().unwrap();
    assert!(!default.iter().any(|f| f.as_str() == Some("fault-injection")), "fault hooks in a normal build");
    let own = &manifest["dev-dependencies"]["shiftlm"];
    assert!(
        own["features"].as_array().unwrap().iter().any(|f| f.as_str() == Some("fault-injection")),
        "the tests turn it on"
    );
    // Without this, the dev-dependency would turn the default `cli` feature back on
    // in every build of the tests and examples (cargo feature unification).
    assert_eq!(own["default-features"].as_bool(), Some(false), "the tests' self-dependency adds no default features");
    let faults = std::fs::read_to_string(root.join("src/faults.rs")).unwrap();
    assert!(faults.contains("#[cfg(not(feature = \"fault-injection\"))]"), "no-op hooks without the feature");
}

/// Every `unsafe impl` says why it is sound, on the lines just above it.
#[test]
fn every_unsafe_impl_has_a_safety_note() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| l.trim_start().starts_with("unsafe impl")) {
            // The note sits above the impl, or above its twin (Send above Sync).
            let above = lines[..i]
                .iter()
                .rev()
                .take_while(|a| a.trim_start().starts_with("//") || a.trim_start().starts_with("unsafe impl"));
            let noted = above.clone().any(|a| a.contains("SAFETY:"));
            assert!(noted, "{}:{}: `{}` has no // SAFETY: note above it", f.display(), i + 1, l.trim());
        }
    }
}

#[test]
fn the_reference_scanner_sees_grouped_nested_inline_and_super_paths() {
    let refs = crate_refs("use crate::{data::X, model};\nlet y = crate::nn::f();\nuse shiftlm_crate::z;", 2);
    assert_eq!(refs, vec!["data", "model", "nn"]);
    let refs = crate_refs("use crate::{data::{X, Y}, train::Z, self};", 2);
    assert_eq!(refs, vec!["data", "train"]);
    // From src/io.rs (depth 1) `super::` is the crate root; from src/data/shift.rs
    // it is `data`, and `super::super::` the root.
    assert_eq!(crate_refs("use super::train::X;", 1), vec!["train"]);
    assert_eq!(crate_refs("use super::loader::X;", 2), Vec::<String>::new());
    assert_eq!(crate_refs("use super::super::{api, train::X};", 2), vec!["api", "train"]);
    // In an inline test module, `super::` is the file's own module.
    assert_eq!(crate_refs("mod tests {\n    use super::*;\n    use super::super::eval::f;\n}", 1), vec!["eval"]);
}
