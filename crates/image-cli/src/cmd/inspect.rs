//! `image-cli inspect`: what a definition declares and what it resolves to,
//! like `packer inspect` — the variables (sensitive values masked) and, per
//! selected build, its source AMI, instance, regions and files.

use std::fmt::Write as _;

use clap::Args as ClapArgs;
use image_core::spec::load::Loaded;
use image_core::spec::{AmiRegions, Plan, SourceAmi};

use crate::cmd::spec_args::SpecArgs;
use crate::exit::Exit;
use crate::report;

/// Arguments of `inspect`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Print JSON (`{"variables": [...], "builds": [plans]}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints the definition; exit 2 when it does not resolve.
pub fn run(args: &Args) -> Exit {
    let loaded = match args.spec.load() {
        Ok(l) => l,
        Err(diags) => {
            report::diagnostics(&diags);
            return Exit::BadInput;
        }
    };
    report::diagnostics(&loaded.resolved.warnings);
    if args.json {
        let doc = serde_json::json!({
            "spec": loaded.spec.name(),
            "variables": loaded.resolved.variables_json(true),
            "builds": loaded.resolved.plans_json_masked(),
        });
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot print JSON: {e}");
                return Exit::Failed;
            }
        }
    } else {
        print!("{}", text(&loaded));
    }
    Exit::Ok
}

fn text(loaded: &Loaded) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Spec: {}", loaded.spec.name());
    if let Some(d) = loaded.spec.description() {
        let _ = writeln!(out, "Description: {d}");
    }
    let _ = writeln!(out, "\nVariables:");
    if loaded.resolved.variables.is_empty() {
        let _ = writeln!(out, "  <none>");
    }
    for v in &loaded.resolved.variables {
        let mut flags = Vec::new();
        if v.required {
            flags.push("required");
        }
        if v.sensitive {
            flags.push("sensitive");
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" ({})", flags.join(", "))
        };
        let _ = writeln!(
            out,
            "  {} = {}{flags}  [{}]",
            v.name,
            v.display_value(),
            v.source
        );
        if let Some(d) = &v.description {
            let _ = writeln!(out, "      {d}");
        }
    }
    let _ = writeln!(out, "\nBuilds:");
    let mask = |s: &str| loaded.resolved.mask(s);
    for p in &loaded.resolved.plans {
        build(&mut out, p, &mask);
    }
    out
}

fn build(out: &mut String, p: &Plan, mask: &dyn Fn(&str) -> String) {
    let _ = writeln!(out, "  {}:", p.name);
    match &p.source_ami {
        SourceAmi::Id(id) => {
            let _ = writeln!(out, "    source_ami:    {id}");
        }
        SourceAmi::Filter(f) => {
            let _ = writeln!(
                out,
                "    source_ami:    name={} owners={} architecture={}{}",
                f.name,
                f.owners.join(","),
                f.architecture.as_str(),
                if f.most_recent { " most_recent" } else { "" }
            );
        }
    }
    let _ = writeln!(out, "    instance_type: {}", p.instance_type);
    let _ = writeln!(out, "    region:        {}", p.region);
    let regions = match &p.ami_regions {
        AmiRegions::All => "all".to_string(),
        AmiRegions::List(l) | AmiRegions::Resolved(l) if l.is_empty() => {
            "<build region only>".to_string()
        }
        AmiRegions::List(l) | AmiRegions::Resolved(l) => l.join(", "),
    };
    let _ = writeln!(out, "    ami_regions:   {regions}");
    let _ = writeln!(out, "    ami_name:      {}", mask(&p.ami_name));
    let files = |v: &[image_core::spec::FileRef]| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.iter()
                .map(|f| f.given.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(out, "    provision:     {}", files(&p.provision));
    let _ = writeln!(out, "    verify:        {}", files(&p.verify));
}
