//! Reading one build's settings (defaults merged, templates rendered) into a
//! typed, checked [`Plan`]. Unknown keys are errors with a did-you-mean;
//! every problem is collected, none stops the others.
//!
//! An empty string for an optional setting means "not set", so
//! `ssh_host: "{{ ssh_host }}"` with an empty variable leaves it unset.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::ami_options::{self, AmiOptions};
use super::check;
use super::plan::*;
use super::settings::Problem;
use crate::diag::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::yaml::{MapReader, Node, Value};

mod spot;
mod subnet_filter;

/// What reading a build needs besides its settings.
pub struct BuildContext<'a> {
    /// The build's name.
    pub name: &'a str,
    /// Where the build is named (for missing settings).
    pub loc: &'a Location,
    /// The definition's name.
    pub spec: &'a str,
    /// Relative paths are relative to this.
    pub base_dir: &'a Path,
    /// Strings whose template failed (already reported).
    pub failed: &'a HashSet<Location>,
}

/// Reads `node` into a plan; `None` when anything is wrong (all of it in
/// `diags`).
pub fn read_plan(node: &Node, cx: &BuildContext<'_>, diags: &mut Diagnostics) -> Option<Plan> {
    let mut r = Reader {
        cx,
        node,
        diags: Diagnostics::default(),
        region_locs: BTreeMap::new(),
    };
    let what = format!("build `{}`", cx.name);
    let mut m = MapReader::new(node, &what, &mut r.diags)?;

    let source_ami = r.source_ami(m.get("source_ami"));
    let spot = r.spot(&mut m);
    // With spot_instance_types, instance_type may be left out (the first).
    let instance_type = match spot.types.first() {
        Some(first) => r
            .opt_str(m.get("instance_type"), "instance_type")
            .or_else(|| Some(first.clone())),
        None => r.required_str(&mut m, "instance_type"),
    };
    if let (Some(t), Some(n)) = (&instance_type, m.node().get("instance_type")) {
        if !spot::is_instance_type(t) {
            r.err(
                n.error(format!("invalid instance type `{t}`"))
                    .with_help("instance types look like `t3.small` or `m7g.large`"),
            );
        }
    }
    let region = r.required_str(&mut m, "region");
    if let (Some(reg), Some(n)) = (&region, m.node().get("region")) {
        r.check_region(n, reg, "region");
    }
    let ssh_username = r.required_str(&mut m, "ssh_username");
    let ssh_interface = r
        .one_of(
            &mut m,
            "ssh_interface",
            &["public_ip", "private_ip", "public_dns", "private_dns"],
        )
        .map_or(SshInterface::PublicIp, |s| match s.as_str() {
            "private_ip" => SshInterface::PrivateIp,
            "public_dns" => SshInterface::PublicDns,
            "private_dns" => SshInterface::PrivateDns,
            _ => SshInterface::PublicIp,
        });
    let ssh_host = r.opt_str(m.get("ssh_host"), "ssh_host");
    let ssh_port = r.int(m.get("ssh_port"), "ssh_port", 1, 65535).unwrap_or(22) as u16;
    let ssh_host_key_from_console = r
        .opt_bool(
            m.get("ssh_host_key_from_console"),
            "ssh_host_key_from_console",
        )
        .unwrap_or(false);
    let ssh_timeout = r
        .duration(m.get("ssh_timeout"), "ssh_timeout")
        .unwrap_or(Duration::from_secs(300));
    let ssh_keypair_name = r.opt_str(m.get("ssh_keypair_name"), "ssh_keypair_name");
    let ssh_private_key_file = r.file(m.get("ssh_private_key_file"), "ssh_private_key_file");
    if let (Some(_), None, Some(n)) = (
        &ssh_keypair_name,
        &ssh_private_key_file,
        m.node().get("ssh_keypair_name"),
    ) {
        r.err(n.error("ssh_keypair_name needs ssh_private_key_file")
            .with_help("set ssh_private_key_file to the key pair's private key, or drop ssh_keypair_name for a temporary key"));
    }
    if let (None, Some(_), Some(n)) = (
        &ssh_keypair_name,
        &ssh_private_key_file,
        m.node().get("ssh_private_key_file"),
    ) {
        r.err(n.error("ssh_private_key_file needs ssh_keypair_name")
            .with_help("set ssh_keypair_name to the EC2 key pair the key belongs to, or drop ssh_private_key_file for a temporary key"));
    }
    let subnet_id = r.opt_str(m.get("subnet_id"), "subnet_id");
    let vpc_id = r.opt_str(m.get("vpc_id"), "vpc_id");
    let subnet_filter = r.subnet_filter(m.get("subnet_filter"), subnet_id.is_some());
    let associate_public_ip_address = r.opt_bool(
        m.get("associate_public_ip_address"),
        "associate_public_ip_address",
    );
    let security_group_ids = r.list(m.get("security_group_ids"), "security_group_ids", |s| {
        check::is_resource_id(s, "sg").then_some(()).ok_or((
            "invalid security group id",
            "security group ids look like `sg-0123456789abcdef0`",
        ))
    });
    let temporary_security_group_source_cidrs = r.list(
        m.get("temporary_security_group_source_cidrs"),
        "temporary_security_group_source_cidrs",
        |s| {
            check::is_cidr(s).then_some(()).ok_or((
                "invalid CIDR",
                "use an address and a prefix length, like `10.0.0.0/16` or `::/0`",
            ))
        },
    );
    let iam_instance_profile = r.opt_str(m.get("iam_instance_profile"), "iam_instance_profile");
    let user_data = r.opt_str(m.get("user_data"), "user_data");
    let user_data_file = r.file(m.get("user_data_file"), "user_data_file");
    if let (Some(_), Some(_), Some(n)) =
        (&user_data, &user_data_file, m.node().get("user_data_file"))
    {
        r.err(
            n.error("user_data and user_data_file are both set")
                .with_help("keep one of them"),
        );
    }
    let metadata_options = r.metadata_options(m.get("metadata_options"));
    let root_device = r.root_device(m.get("root_device"));
    let encrypted = r.opt_bool(m.get("encrypted"), "encrypted").unwrap_or(true);
    let kms_key_id = r.opt_str(m.get("kms_key_id"), "kms_key_id");
    let ami_name = r.required_str(&mut m, "ami_name");
    let ami_description = r.opt_str(m.get("ami_description"), "ami_description");
    let ami_regions = r.ami_regions(m.get("ami_regions"));
    let region_kms_key_ids = r.string_map(m.get("region_kms_key_ids"), "region_kms_key_ids");
    if let Some(n) = m.node().get("region_kms_key_ids") {
        r.check_region_keys(n, &region_kms_key_ids);
    }
    // The values' rules are `BuildSettings::problems`, reported below.
    let any = |_: &str| Ok(());
    let ami_users = r.list(m.get("ami_users"), "ami_users", any);
    let ami_groups = r.list(m.get("ami_groups"), "ami_groups", any);
    let ami_org_arns = r.list(m.get("ami_org_arns"), "ami_org_arns", any);
    let ami_ou_arns = r.list(m.get("ami_ou_arns"), "ami_ou_arns", any);
    let snapshot_users = r.list(m.get("snapshot_users"), "snapshot_users", any);
    let snapshot_groups = r.list(m.get("snapshot_groups"), "snapshot_groups", any);
    let force_deregister = r
        .opt_bool(m.get("force_deregister"), "force_deregister")
        .unwrap_or(false);
    let deprecate_at = r.opt_str(m.get("deprecate_at"), "deprecate_at");
    let disable_stop_instance = r
        .opt_bool(m.get("disable_stop_instance"), "disable_stop_instance")
        .unwrap_or(false);
    let ami_options = AmiOptions::read(&mut r, &mut m);
    let skip_region_validation = r
        .opt_bool(m.get("skip_region_validation"), "skip_region_validation")
        .unwrap_or(false);
    let tags = r.tags(m.get("tags"), "tags");
    let run_tags = r.tags(m.get("run_tags"), "run_tags");
    let mut volume_tags = r.tags(m.get("volume_tags"), "volume_tags");
    // packer's name for the same tags (the launch volumes').
    volume_tags.extend(r.tags(m.get("run_volume_tags"), "run_volume_tags"));
    let snapshot_tags = r.tags(m.get("snapshot_tags"), "snapshot_tags");
    let provision = r.files(m.get("provision"), "provision");
    let provision_vars = r.json_map(m.get("provision_vars"), "provision_vars");
    let verify = r.files(m.get("verify"), "verify");
    let test_verify = match m.get("test_verify") {
        Some(node) => r.files(Some(node), "test_verify"),
        None => verify.clone(),
    };
    let verify_vars = r.json_map(m.get("verify_vars"), "verify_vars");
    let image_wait_timeout = r
        .duration(m.get("image_wait_timeout"), "image_wait_timeout")
        .unwrap_or(Duration::from_secs(3600));
    m.finish(&mut r.diags);

    // A missing essential is already an error; its placeholder is not
    // checked again.
    let settings = BuildSettings {
        region: region.clone().unwrap_or_default(),
        source_ami: source_ami.clone().unwrap_or(SourceAmi::Id(String::new())),
        instance_type: instance_type.clone().unwrap_or_default(),
        subnet_id,
        vpc_id,
        subnet_filter,
        associate_public_ip_address,
        iam_instance_profile,
        metadata_options,
        root_device,
        encrypted,
        kms_key_id,
        ami_name: ami_name.clone().unwrap_or_default(),
        ami_description,
        ami_regions,
        region_kms_key_ids,
        ami_users,
        ami_groups,
        ami_org_arns,
        ami_ou_arns,
        snapshot_users,
        snapshot_groups,
        force_deregister,
        deprecate_at,
        disable_stop_instance,
        ami_options,
        spot: super::spot::SpotOptions {
            spot_price: spot.price,
            spot_instance_types: spot.types,
            spot_tags: spot.tags,
        },
        skip_region_validation,
        tags,
        run_tags,
        volume_tags,
        snapshot_tags,
    };
    for p in settings.problems() {
        if p.key != "ami_name" || ami_name.is_some() {
            r.problem(&p);
        }
    }

    let ok = !r.diags.has_errors();
    diags.extend(r.diags);
    if !ok {
        return None;
    }
    source_ami.as_ref()?;
    instance_type.as_ref()?;
    region.as_ref()?;
    ami_name.as_ref()?;
    Some(Plan {
        name: cx.name.to_string(),
        spec: cx.spec.to_string(),
        settings,
        region_locs: r.region_locs,
        ssh_username: ssh_username?,
        ssh_interface,
        ssh_host,
        ssh_port,
        ssh_host_key_from_console,
        ssh_timeout,
        ssh_keypair_name,
        ssh_private_key_file,
        security_group_ids,
        temporary_security_group_source_cidrs,
        user_data,
        user_data_file,
        provision,
        provision_vars,
        verify,
        test_verify,
        verify_vars,
        image_wait_timeout,
    })
}

/// Every build setting: [`BUILD_KEYS`] and [`ami_options::KEYS`].
pub fn keys() -> impl Iterator<Item = &'static str> {
    BUILD_KEYS.iter().chain(ami_options::KEYS).copied()
}

/// The build settings read here (the AMI options are read in
/// [`ami_options`]).
pub const BUILD_KEYS: &[&str] = &[
    "source_ami",
    "instance_type",
    "region",
    "ssh_username",
    "ssh_interface",
    "ssh_host",
    "ssh_port",
    "ssh_host_key_from_console",
    "ssh_timeout",
    "ssh_keypair_name",
    "ssh_private_key_file",
    "subnet_id",
    "vpc_id",
    "subnet_filter",
    "associate_public_ip_address",
    "security_group_ids",
    "temporary_security_group_source_cidrs",
    "iam_instance_profile",
    "user_data",
    "user_data_file",
    "metadata_options",
    "root_device",
    "encrypted",
    "kms_key_id",
    "ami_name",
    "ami_description",
    "ami_regions",
    "region_kms_key_ids",
    "ami_users",
    "ami_groups",
    "ami_org_arns",
    "ami_ou_arns",
    "snapshot_users",
    "snapshot_groups",
    "force_deregister",
    "deprecate_at",
    "disable_stop_instance",
    "spot_price",
    "spot_instance_types",
    "spot_tags",
    "skip_region_validation",
    "tags",
    "run_tags",
    "volume_tags",
    "run_volume_tags",
    "snapshot_tags",
    "provision",
    "provision_vars",
    "verify",
    "test_verify",
    "verify_vars",
    "image_wait_timeout",
];

/// A failed check of one list item: (message, help).
type ItemCheck<'a> = &'a dyn Fn(&str) -> Result<(), (&'static str, &'static str)>;

/// Reads one build's mapping, collecting diagnostics.
pub(super) struct Reader<'a> {
    cx: &'a BuildContext<'a>,
    node: &'a Node,
    diags: Diagnostics,
    /// Where each region is first named.
    region_locs: BTreeMap<String, Location>,
}

impl Reader<'_> {
    /// Pushes `d` unless it is about a string whose template already failed.
    pub(super) fn err(&mut self, d: Diagnostic) {
        if d.location
            .as_ref()
            .is_some_and(|l| self.cx.failed.contains(l))
        {
            return;
        }
        self.diags.push(d);
    }

    /// True when a key of the build is an unknown key close to `key`.
    fn typo_of(&self, key: &str) -> bool {
        self.node.as_map().unwrap_or_default().iter().any(|(k, _)| {
            k.as_key().is_some_and(|k| {
                !keys().any(|known| known == k.as_str()) && did_you_mean(&k, [key]).is_some()
            })
        })
    }

    fn missing(&mut self, key: &str) {
        // `instnce_type: x` already says "unknown key, did you mean
        // `instance_type`?"; saying it is missing too would be noise.
        if self.typo_of(key) {
            return;
        }
        self.diags.push(
            Diagnostic::error(
                self.cx.loc.clone(),
                format!("build `{}` has no `{key}`", self.cx.name),
            )
            .with_help(format!("set `{key}` in the build or in `defaults`")),
        );
    }

    /// A scalar as text; `None` for null, empty text and (with an error)
    /// collections.
    fn opt_str(&mut self, node: Option<&Node>, key: &str) -> Option<String> {
        let n = node?;
        match &n.value {
            Value::Seq(_) | Value::Map(_) => {
                self.err(
                    n.type_error(key, "a string")
                        .with_help(format!("give `{key}` one value, e.g. `{key}: value`")),
                );
                None
            }
            _ => n.scalar_string().filter(|s| !s.is_empty()),
        }
    }

    fn required_str(&mut self, m: &mut MapReader<'_>, key: &'static str) -> Option<String> {
        let node = m.get(key);
        let v = self.opt_str(node, key);
        if v.is_none() && node.is_none_or(|n| !matches!(n.value, Value::Seq(_) | Value::Map(_))) {
            if node.is_some_and(|n| self.cx.failed.contains(&n.loc)) {
                return None;
            }
            match node {
                // Given but empty: say so where it is given.
                Some(n) if !self.typo_of(key) => self.err(
                    n.error(format!("`{key}` is empty in build `{}`", self.cx.name))
                        .with_help(format!("give `{key}` a value")),
                ),
                _ => self.missing(key),
            }
        }
        v
    }

    pub(super) fn one_of(
        &mut self,
        m: &mut MapReader<'_>,
        key: &'static str,
        allowed: &[&str],
    ) -> Option<String> {
        let node = m.get(key)?;
        self.choice(node, key, allowed)
    }

    fn choice(&mut self, node: &Node, key: &str, allowed: &[&str]) -> Option<String> {
        let s = self.opt_str(Some(node), key)?;
        if allowed.contains(&s.as_str()) {
            return Some(s);
        }
        let mut d = node.error(format!(
            "{key} must be one of {}; found `{s}`",
            allowed.join(", ")
        ));
        d = match did_you_mean(&s, allowed.iter().copied()) {
            Some(m) => d.with_help(format!("did you mean `{m}`?")),
            None => d.with_help(format!("use one of: {}", allowed.join(", "))),
        };
        self.err(d);
        None
    }

    pub(super) fn opt_bool(&mut self, node: Option<&Node>, key: &str) -> Option<bool> {
        let n = node?;
        if n.is_null() || n.as_str() == Some("") {
            return None;
        }
        let b = n.as_bool_loose();
        if b.is_none() {
            self.err(
                n.type_error(key, "a boolean (true or false)")
                    .with_help(format!("write `{key}: true` or `{key}: false`")),
            );
        }
        b
    }

    fn int(&mut self, node: Option<&Node>, key: &str, min: i64, max: i64) -> Option<i64> {
        let n = node?;
        if n.is_null() || n.as_str() == Some("") {
            return None;
        }
        let Some(i) = n.as_i64() else {
            self.err(n.type_error(key, "an integer").with_help(format!(
                "write a whole number from {min} to {max}, without quotes or units"
            )));
            return None;
        };
        if !(min..=max).contains(&i) {
            self.err(
                n.error(format!("{key} must be between {min} and {max}, found {i}"))
                    .with_help(format!("choose a value from {min} to {max}")),
            );
            return None;
        }
        Some(i)
    }

    fn duration(&mut self, node: Option<&Node>, key: &str) -> Option<Duration> {
        let n = node?;
        let s = self.opt_str(Some(n), key)?;
        let d = check::parse_duration(&s);
        if d.is_none() {
            self.err(
                n.error(format!("invalid duration `{s}` for {key}"))
                    .with_help("use a number with a unit: `90s`, `5m`, `1h30m`"),
            );
        }
        d
    }

    /// Reports a [`BuildSettings::problems`] item at the key, list item or
    /// mapping key it names (the nearest enclosing key when that was not
    /// written: a default; the build when none was).
    fn problem(&mut self, p: &Problem) {
        let mut at = None;
        let mut node = Some(self.node);
        for part in p.key.split('.') {
            // `run_volume_tags` is packer's name for `volume_tags`.
            node = node.and_then(|n| match (part, n.get(part)) {
                ("volume_tags", None) => n.get("run_volume_tags"),
                (_, found) => found,
            });
            at = node.or(at);
        }
        let item = p
            .item
            .as_deref()
            .zip(node)
            .and_then(|(item, n)| match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .find(|i| i.scalar_string().as_deref() == Some(item)),
                Value::Map(_) => n.as_map().and_then(|pairs| {
                    pairs
                        .iter()
                        .find(|(k, _)| k.as_key().as_deref() == Some(item))
                        .map(|(k, _)| k)
                }),
                _ => None,
            });
        let d = match item.or(at) {
            Some(n) => n.error(p.message.clone()),
            None => Diagnostic::error(self.cx.loc.clone(), p.message.clone()),
        };
        self.err(d.with_help(p.help.clone()));
    }

    fn check_region(&mut self, n: &Node, s: &str, key: &str) -> bool {
        if check::is_region(s) {
            if !check::is_known_region(s) && !self.region_locs.contains_key(s) {
                let help = match did_you_mean(s, check::KNOWN_REGIONS.iter().copied()) {
                    Some(k) => format!("did you mean `{k}`? (`build` checks the account's regions with DescribeRegions)"),
                    None => "`build` checks the account's regions with DescribeRegions before creating anything".to_string(),
                };
                self.diags.push(
                    Diagnostic::warning(n.loc.clone(), format!("unknown region `{s}` in {key}"))
                        .with_help(help),
                );
            }
            self.region_locs
                .entry(s.to_string())
                .or_insert_with(|| n.loc.clone());
            return true;
        }
        self.err(
            n.error(format!("invalid region `{s}` in {key}"))
                .with_help("regions look like `us-east-1`, `eu-west-2` or `us-gov-west-1`"),
        );
        false
    }

    /// A list of strings; text is comma-separated, null or empty is empty.
    pub(super) fn list(
        &mut self,
        node: Option<&Node>,
        key: &str,
        check: impl Fn(&str) -> Result<(), (&'static str, &'static str)>,
    ) -> Vec<String> {
        let check: ItemCheck<'_> = &check;
        self.list_with(node, key, check)
    }

    fn list_with(&mut self, node: Option<&Node>, key: &str, check: ItemCheck<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for (s, n) in self.items(node, key) {
            if let Err((msg, help)) = check(&s) {
                self.err(n.error(format!("{msg} `{s}` in {key}")).with_help(help));
            }
            out.push(s);
        }
        out
    }

    fn items(&mut self, node: Option<&Node>, key: &str) -> Vec<(String, Node)> {
        let Some(n) = node else {
            return Vec::new();
        };
        match &n.value {
            Value::Null => Vec::new(),
            Value::Str(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| (p.to_string(), n.clone()))
                .collect(),
            Value::Seq(items) => {
                let mut out = Vec::new();
                for i in items {
                    match i.scalar_string() {
                        Some(s) if !i.is_null() => out.push((s, i.clone())),
                        _ => self.err(
                            i.type_error(&format!("an item of {key}"), "a string")
                                .with_help(format!("list plain values: `{key}: [a, b]`")),
                        ),
                    }
                }
                out
            }
            _ => {
                self.err(
                    n.type_error(key, "a list")
                        .with_help(format!("list the values: `{key}: [a, b]`")),
                );
                Vec::new()
            }
        }
    }

    fn string_map(&mut self, node: Option<&Node>, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(n) = node else {
            return out;
        };
        if n.is_null() {
            return out;
        }
        let Some(pairs) = n.as_map() else {
            self.err(
                n.type_error(key, "a mapping")
                    .with_help(format!("write `{key}:` with `name: value` lines under it")),
            );
            return out;
        };
        for (k, v) in pairs {
            let name = k.as_key().unwrap_or_default();
            match &v.value {
                Value::Seq(_) | Value::Map(_) => {
                    self.err(
                        v.type_error(&format!("{key}.{name}"), "a string")
                            .with_help("give a plain value (quote it to keep it text)"),
                    );
                }
                _ => {
                    out.insert(name, v.scalar_string().unwrap_or_default());
                }
            }
        }
        out
    }

    /// Tags (their rules are in [`BuildSettings::problems`]).
    fn tags(&mut self, node: Option<&Node>, key: &str) -> BTreeMap<String, String> {
        self.string_map(node, key)
    }

    fn json_map(
        &mut self,
        node: Option<&Node>,
        key: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        match node {
            None => serde_json::Map::new(),
            Some(n) if n.is_null() => serde_json::Map::new(),
            Some(n) => match n.to_json() {
                serde_json::Value::Object(m) if n.as_map().is_some() => m,
                _ => {
                    self.err(
                        n.type_error(key, "a mapping")
                            .with_help(format!("write `{key}:` with `name: value` lines under it")),
                    );
                    serde_json::Map::new()
                }
            },
        }
    }

    fn file(&mut self, node: Option<&Node>, key: &str) -> Option<FileRef> {
        let n = node?;
        let s = self.opt_str(Some(n), key)?;
        Some(self.file_ref(s, n))
    }

    fn file_ref(&self, given: String, n: &Node) -> FileRef {
        let path = self.cx.base_dir.join(&given);
        FileRef {
            given,
            path,
            loc: n.loc.clone(),
        }
    }

    fn files(&mut self, node: Option<&Node>, key: &str) -> Vec<FileRef> {
        let Some(n) = node else {
            return Vec::new();
        };
        match &n.value {
            Value::Null => Vec::new(),
            Value::Seq(_) => self
                .items(Some(n), key)
                .into_iter()
                .map(|(s, i)| self.file_ref(s, &i))
                .collect(),
            Value::Str(s) if s.is_empty() => Vec::new(),
            Value::Str(s) => vec![self.file_ref(s.clone(), n)],
            _ => {
                self.err(
                    n.type_error(key, "a list of files")
                        .with_help(format!("list the files: `{key}: [a.yaml, b.yaml]`")),
                );
                Vec::new()
            }
        }
    }

    fn source_ami(&mut self, node: Option<&Node>) -> Option<SourceAmi> {
        let Some(n) = node else {
            self.missing("source_ami");
            return None;
        };
        match &n.value {
            Value::Map(_) => self.ami_filter(n).map(SourceAmi::Filter),
            Value::Str(s) if check::is_ami_id(s) => Some(SourceAmi::Id(s.clone())),
            Value::Null => {
                self.missing("source_ami");
                None
            }
            Value::Str(s) if s.is_empty() => {
                if !self.cx.failed.contains(&n.loc) {
                    self.missing("source_ami");
                }
                None
            }
            Value::Str(s) => {
                self.err(n.error(format!("invalid AMI id `{s}` in source_ami"))
                    .with_help("AMI ids look like `ami-0123456789abcdef0`; to search by name, give a filter mapping (owners, name, architecture)"));
                None
            }
            _ => {
                self.err(
                    n.type_error("source_ami", "an AMI id or a filter mapping")
                        .with_help("give an id (`ami-0123456789abcdef0`) or a mapping with owners, name and architecture"),
                );
                None
            }
        }
    }

    fn ami_filter(&mut self, n: &Node) -> Option<AmiFilter> {
        let mut m = MapReader::new(n, "source_ami", &mut self.diags)?;
        let owners_node = m.get("owners");
        let owners = self.list(owners_node, "source_ami.owners", |s| {
            (check::is_account_id(s)
                || ["amazon", "self", "aws-marketplace", "aws-backup-vault"].contains(&s))
            .then_some(())
            .ok_or((
                "invalid owner",
                "owners are 12-digit account ids or `amazon`, `self`, `aws-marketplace`",
            ))
        });
        if owners.is_empty() && owners_node.is_none_or(|o| !self.cx.failed.contains(&o.loc)) {
            let (at, msg) = match owners_node {
                Some(o) => (o, "source_ami.owners is empty"),
                None => (n, "source_ami filter has no `owners`"),
            };
            self.diags.push(
                at.error(msg)
                    .with_help("name the accounts that publish the image, e.g. `owners: [\"099720109477\"]` for Canonical"),
            );
        }
        let name_node = m.get("name");
        let name = self.opt_str(name_node, "source_ami.name");
        if name.is_none() && name_node.is_none_or(|o| !self.cx.failed.contains(&o.loc)) {
            self.diags.push(
                n.error("source_ami filter has no `name`")
                    .with_help("give a name glob, e.g. `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*`"),
            );
        }
        let architecture = match m.get("architecture") {
            Some(a) => match self
                .choice(a, "source_ami.architecture", &["x86_64", "arm64"])
                .as_deref()
            {
                Some("arm64") => Architecture::Arm64,
                _ => Architecture::X86_64,
            },
            None => Architecture::X86_64,
        };
        let virtualization_type = match m.get("virtualization_type") {
            Some(v) => self.choice(v, "source_ami.virtualization_type", &["hvm", "paravirtual"]),
            None => None,
        }
        .unwrap_or_else(|| "hvm".into());
        let root_device_type = match m.get("root_device_type") {
            Some(v) => self.choice(v, "source_ami.root_device_type", &["ebs", "instance-store"]),
            None => None,
        }
        .unwrap_or_else(|| "ebs".into());
        let most_recent = self
            .opt_bool(m.get("most_recent"), "source_ami.most_recent")
            .unwrap_or(true);
        m.finish(&mut self.diags);
        Some(AmiFilter {
            owners,
            name: name?,
            architecture,
            virtualization_type,
            root_device_type,
            most_recent,
        })
    }

    fn metadata_options(&mut self, node: Option<&Node>) -> MetadataOptions {
        let mut out = MetadataOptions::default();
        let Some(n) = node.filter(|n| !n.is_null()) else {
            return out;
        };
        let Some(mut m) = MapReader::new(n, "metadata_options", &mut self.diags) else {
            return out;
        };
        if let Some(v) = m.get("http_tokens") {
            if let Some(s) = self.choice(v, "http_tokens", &["required", "optional"]) {
                out.http_tokens = s;
            }
        }
        if let Some(i) = self.int(
            m.get("http_put_response_hop_limit"),
            "http_put_response_hop_limit",
            1,
            64,
        ) {
            out.http_put_response_hop_limit = i as u8;
        }
        if let Some(v) = m.get("http_endpoint") {
            if let Some(s) = self.choice(v, "http_endpoint", &["enabled", "disabled"]) {
                out.http_endpoint = s;
            }
        }
        if let Some(v) = m.get("instance_metadata_tags") {
            out.instance_metadata_tags =
                self.choice(v, "instance_metadata_tags", &["enabled", "disabled"]);
        }
        m.finish(&mut self.diags);
        out
    }

    fn root_device(&mut self, node: Option<&Node>) -> RootDevice {
        let mut out = RootDevice::default();
        let Some(n) = node.filter(|n| !n.is_null()) else {
            return out;
        };
        let Some(mut m) = MapReader::new(n, "root_device", &mut self.diags) else {
            return out;
        };
        let dev = m.get("device_name");
        out.device_name = self.opt_str(dev, "device_name");
        if let (Some(d), Some(dn)) = (&out.device_name, dev) {
            if !d.starts_with("/dev/") && !d.starts_with("xvd") {
                self.err(
                    dn.error(format!("invalid device_name `{d}`"))
                        .with_help("device names look like `/dev/sda1` or `/dev/xvda`"),
                );
            }
        }
        out.volume_size = self
            .int(m.get("volume_size"), "volume_size", 1, 65536)
            .map(|i| i as u32);
        let vt_node = m.get("volume_type");
        if let Some(v) = vt_node {
            out.volume_type = match self
                .choice(v, "volume_type", &["gp2", "gp3", "io1", "io2"])
                .as_deref()
            {
                Some("gp2") => VolumeType::Gp2,
                Some("io1") => VolumeType::Io1,
                Some("io2") => VolumeType::Io2,
                _ => VolumeType::Gp3,
            };
        }
        let iops_node = m.get("iops");
        out.iops = self.int(iops_node, "iops", 1, 256_000).map(|i| i as u32);
        let tp_node = m.get("throughput");
        out.throughput = self.int(tp_node, "throughput", 1, 2000).map(|i| i as u32);
        // The rules across fields are `RootDevice::problems`, reported with
        // the other settings' problems.
        out.delete_on_termination = self
            .opt_bool(m.get("delete_on_termination"), "delete_on_termination")
            .unwrap_or(true);
        m.finish(&mut self.diags);
        out
    }

    fn ami_regions(&mut self, node: Option<&Node>) -> AmiRegions {
        let Some(n) = node else {
            return AmiRegions::List(Vec::new());
        };
        if n.as_str() == Some("all") {
            return AmiRegions::All;
        }
        let items = self.items(Some(n), "ami_regions");
        let mut out = Vec::new();
        for (s, i) in items {
            if self.check_region(&i, &s, "ami_regions") && !out.contains(&s) {
                out.push(s);
            }
        }
        AmiRegions::List(out)
    }

    /// The region names of `region_kms_key_ids` (whether the build uses
    /// them is [`BuildSettings::problems`]').
    fn check_region_keys(&mut self, n: &Node, keys: &BTreeMap<String, String>) {
        for region in keys.keys() {
            if let Some(k) = n.as_map().and_then(|p| {
                p.iter()
                    .find(|(k, _)| k.as_key().as_deref() == Some(region.as_str()))
            }) {
                self.check_region(&k.0, region, "region_kms_key_ids");
            }
        }
    }
}

/// The plans of a definition with one build `x` (`build`: its indented
/// keys) over defaults with a source AMI, a region and `ssh_username`,
/// plus `defaults` (indented keys): for the tests of the readers in
/// `build/`.
#[cfg(test)]
fn resolve_one_build(defaults: &str, build: &str) -> Result<Vec<Plan>, String> {
    use super::{Selection, Spec, VarInputs};
    let src = format!(
        "defaults:\n  source_ami: ami-0123456789abcdef0\n  region: us-east-1\n  ssh_username: u\n{defaults}builds:\n  x:\n{build}"
    );
    let spec = Spec::parse_lenient("s.yaml", &src, Path::new("/")).map_err(|e| e.to_string())?;
    let inputs = VarInputs {
        files: Vec::new(),
        cli: Vec::new(),
    };
    spec.resolve(&inputs, &Selection::all(), 0)
        .map(|r| r.plans)
        .map_err(|e| e.to_string())
}
