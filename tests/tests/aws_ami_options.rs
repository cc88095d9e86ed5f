//! The AMI options that follow packer's amazon-ebs (`ena_support`) and its
//! ebssurrogate/chroot builders (`boot_mode`, `tpm_support`), against moto
//! behind the fault proxy, asserting the requests moto received:
//! - `ena_support`: ModifyInstanceAttribute `EnaSupport.Value` on the
//!   stopped build instance, before CreateImage. moto 5.2.5 handles only the
//!   `Attribute=enaSupport` form and keeps no ENA attribute, so the result
//!   cannot be read back there.
//! - `boot_mode` + `tpm_support`: the AMI CreateImage made is deregistered
//!   and registered again under its name from its own snapshots, with
//!   `BootMode` and `TpmSupport`; the copy is made from the registered AMI.
//!   moto's RegisterImage keeps neither value (it reports `uefi` for every
//!   AMI), so the boot mode read back proves nothing beyond the request.

mod aws_support;

use aws_support::*;
use image_aws::*;

/// The value of `key` in a form body.
fn param(body: &str, key: &str) -> Option<String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// Every form body moto recorded, in order, each ending in `&` (so
/// `Action=X&` finds the last parameter too).
fn all_bodies(moto: &image_testbed::Moto) -> Vec<String> {
    all_recorded_bodies(moto)
        .into_iter()
        .map(|b| b + "&")
        .collect()
}

#[tokio::test]
async fn ena_support_is_set_on_the_stopped_instance_before_the_image() {
    let env = Env::start().await;
    let mut req = request("ena");
    req.ami_regions = AmiRegions::default();
    req.ami_options.ena_support = Some(true);
    assert!(required_actions(&req).contains("ec2:ModifyInstanceAttribute"));

    env.moto.start_recording().unwrap();
    let events = CancelOn::never();
    build(
        &env.ec2,
        &req,
        &RecordingHook::default().hook(),
        &events,
        CancelToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();

    let calls = all_bodies(&env.moto);
    let bodies = recorded_bodies(&env.moto, "ModifyInstanceAttribute");
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(
        param(&bodies[0], "EnaSupport.Value").as_deref(),
        Some("true")
    );
    let stop = recorded_bodies(&env.moto, "StopInstances");
    let instance = param(&stop[0], "InstanceId.1").expect("stopped instance");
    assert_eq!(
        param(&bodies[0], "InstanceId").as_deref(),
        Some(instance.as_str())
    );
    // Between StopInstances and CreateImage, in the order moto saw them.
    let at = |action: &str| {
        calls
            .iter()
            .position(|b| b.contains(&format!("Action={action}&")))
            .unwrap_or_else(|| panic!("no {action}"))
    };
    let modify = at("ModifyInstanceAttribute");
    assert!(at("StopInstances") < modify && modify < at("CreateImage"));
    let steps: Vec<String> = events
        .steps_finished()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(steps.contains(&"ena_support".to_string()), "{steps:?}");

    // Unset: no call, no action.
    let mut plain = request("ena-unset");
    plain.ami_regions = AmiRegions::default();
    assert!(!required_actions(&plain).contains("ec2:ModifyInstanceAttribute"));
    env.moto.start_recording().unwrap();
    env.build(&plain, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();
    assert!(recorded_bodies(&env.moto, "ModifyInstanceAttribute").is_empty());
}

#[tokio::test]
async fn boot_mode_and_tpm_register_the_ami_again_from_its_snapshots() {
    let env = Env::start().await;
    let mut req = request("uefi-tpm");
    req.ami_regions = AmiRegions::List(vec!["us-west-2".into()]);
    req.ami_options.boot_mode = Some(ami_options::BootMode::Uefi);
    req.ami_options.tpm_support = Some(ami_options::TpmSupport::V2);
    assert!(required_actions(&req).contains("ec2:RegisterImage"));

    env.moto.start_recording().unwrap();
    let res = env
        .build(&req, &RecordingHook::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    env.moto.stop_recording().unwrap();

    let created = recorded_bodies(&env.moto, "CreateImage");
    assert_eq!(created.len(), 1, "{created:#?}");
    let register = recorded_bodies(&env.moto, "RegisterImage");
    assert_eq!(register.len(), 1, "{register:#?}");
    let body = &register[0];
    assert_eq!(param(body, "BootMode").as_deref(), Some("uefi"), "{body}");
    assert_eq!(param(body, "TpmSupport").as_deref(), Some("v2.0"), "{body}");
    assert_eq!(
        param(body, "Name").as_deref(),
        param(&created[0], "Name").as_deref()
    );
    assert!(
        param(body, "BlockDeviceMapping.1.Ebs.SnapshotId").is_some_and(|s| s.starts_with("snap-")),
        "{body}"
    );
    assert!(
        body.contains("TagSpecification.1.ResourceType=image"),
        "{body}"
    );

    // The AMI of the result is the registered one; the first is gone, and
    // the copy was made from the registered one.
    let ami = &res.amis[REGION];
    let deregistered = recorded_bodies(&env.moto, "DeregisterImage");
    assert_eq!(deregistered.len(), 1, "{deregistered:#?}");
    let first = param(&deregistered[0], "ImageId").unwrap();
    assert_ne!(&first, ami);
    let copies = recorded_bodies(&env.moto, "CopyImage");
    assert_eq!(
        param(&copies[0], "SourceImageId").as_deref(),
        Some(ami.as_str())
    );
    let c = env.direct.client(REGION);
    let out = c.describe_images().image_ids(ami).send().await.unwrap();
    let img = &out.images()[0];
    assert_eq!(img.name(), Some(req.ami_name.as_str()));
    assert_eq!(img.boot_mode().map(|b| b.as_str()), Some("uefi"));
    let gone = c.describe_images().image_ids(&first).send().await;
    assert!(
        gone.map_or(true, |o| o.images().is_empty()),
        "the first AMI is still registered"
    );
}

#[test]
fn tpm_without_uefi_is_refused() {
    let mut req = request("tpm-bios");
    req.ami_options.tpm_support = Some(ami_options::TpmSupport::V2);
    req.ami_options.boot_mode = Some(ami_options::BootMode::LegacyBios);
    let errs = req.validate().unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("tpm_support needs boot_mode uefi, found legacy-bios")),
        "{errs:?}"
    );
}
